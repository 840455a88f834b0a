"""ncnn (pnnx): every image model converts and matches at fp32; ferry's adapter takes only
N x C x H x W float inputs, so the others are refused with that reason."""

REFUSAL = "ncnn cannot take the model"
EXPECTED = {
    n: "refused"
    for n in (
        "MLP",
        "TokenTransformer",
        "LSTMTagger",
        "BiGRU",
        "MultiIO",
        "WhereCumsumTopk",
        "EinsumAttention",
        "DataDependentBranch",
    )
}
