"""MNN 3.6: the converter aborts on the LSTM's While loop; bicubic Resize differs at the border
(first divergence: the Resize node, max abs diff 1.8)."""

REFUSAL = "MNN cannot convert the model"
EXPECTED = {"LSTMTagger": "refused", "BicubicUp": "wrong"}
