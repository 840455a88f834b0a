"""LiteRT (litert-torch 0.10): torch.export refuses the data-dependent branch; the rest converts
and matches at the export shape (its programs are static: other shapes are listed as not run)."""

REFUSAL = "LiteRT cannot convert the model"
EXPECTED = {"DataDependentBranch": "refused"}
