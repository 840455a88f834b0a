"""ExecuTorch 1.5 (XNNPACK): RNNs lower but give wrong results at other sequence lengths; einsum
attention (two dynamic dims in a reshape) and bicubic cannot be lowered."""

REFUSAL = "ExecuTorch cannot lower the model"
EXPECTED = {
    "LSTMTagger": "wrong",
    "BiGRU": "wrong",
    "EinsumAttention": "refused",
    "BicubicUp": "refused",
    "DataDependentBranch": "refused",
}
