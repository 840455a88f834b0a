"""Real architectures as users build them, from transformers (tiny configs, random weights).

Each factory builds its model from a config object (never ``from_pretrained``: no network), with
a fixed seed, in eval mode. ``MODELS`` gives each one's ``--input`` specs. transformers is
imported inside the factories so that collecting the suite without it costs nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Small enough to export and verify in seconds; large enough to have every block of the family.
HIDDEN = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _built(cls_name: str, config_name: str, *, trained_like: bool = False, **config: Any) -> nn.Module:
    import transformers

    torch.manual_seed(0)
    cfg = getattr(transformers, config_name)(**config)
    model: nn.Module = getattr(transformers, cls_name)(cfg)
    if trained_like:
        _trained_like(model)
    return model.eval()


def _trained_like(model: nn.Module) -> None:
    """Activations of a trained network's scale: transformers initializes convolutions with
    std 0.02, which at these widths shrinks a CNN's outputs to 1e-30 and below (float32 flushes
    them to zero: nothing left to compare). PyTorch's default init keeps them of order one, and
    BatchNorm gets running statistics that are not the identity."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.reset_parameters()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            assert m.running_var is not None
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)


# --- encoders over tokens, with attention masks -------------------------------------------------


def bert() -> nn.Module:
    return _built("BertModel", "BertConfig", vocab_size=100, max_position_embeddings=64, **HIDDEN)


def distilbert() -> nn.Module:
    return _built(
        "DistilBertModel", "DistilBertConfig", vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=64,
    )  # fmt: skip


def roberta() -> nn.Module:
    return _built("RobertaModel", "RobertaConfig", vocab_size=100, max_position_embeddings=70, **HIDDEN)


def t5_encoder() -> nn.Module:
    return _built("T5EncoderModel", "T5Config", vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2)


def t5() -> nn.Module:
    return _built(
        "T5ForConditionalGeneration", "T5Config", vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2,
        num_decoder_layers=2, num_heads=2, use_cache=False,
    )  # fmt: skip


# --- decoder language models ----------------------------------------------------------------


def gpt2() -> nn.Module:
    return _built(
        "GPT2LMHeadModel", "GPT2Config", vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        use_cache=False, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip


def llama() -> nn.Module:
    return _built(
        "LlamaForCausalLM", "LlamaConfig", vocab_size=100, max_position_embeddings=64, num_key_value_heads=1,
        use_cache=False, **HIDDEN,
    )  # fmt: skip


def gpt2_cached() -> nn.Module:
    """GPT-2 as generation uses it (use_cache=True): exported as one decoding step with its cache."""
    return _built(
        "GPT2LMHeadModel", "GPT2Config", vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip


def llama_cached() -> nn.Module:
    return _built(
        "LlamaForCausalLM", "LlamaConfig", vocab_size=100, max_position_embeddings=64, num_key_value_heads=1,
        **HIDDEN,
    )  # fmt: skip


# --- vision --------------------------------------------------------------------------------


def vit() -> nn.Module:
    return _built("ViTModel", "ViTConfig", image_size=32, patch_size=8, **HIDDEN)


def deit() -> nn.Module:
    return _built("DeiTModel", "DeiTConfig", image_size=32, patch_size=8, **HIDDEN)


def swin() -> nn.Module:
    return _built(
        "SwinModel", "SwinConfig", image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
        window_size=4,
    )  # fmt: skip


def convnext() -> nn.Module:
    return _built(
        "ConvNextModel", "ConvNextConfig", trained_like=True, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2
    )


def resnet() -> nn.Module:
    return _built("ResNetForImageClassification", "ResNetConfig", trained_like=True, embedding_size=8, hidden_sizes=[8, 16, 32],
        depths=[1, 1, 1], num_labels=10,
    )  # fmt: skip


def mobilenet_v2() -> nn.Module:
    return _built("MobileNetV2Model", "MobileNetV2Config", trained_like=True, depth_multiplier=0.35, image_size=32)


def efficientnet() -> nn.Module:
    return _built("EfficientNetForImageClassification", "EfficientNetConfig", trained_like=True, image_size=32, width_coefficient=0.1,
        depth_coefficient=0.1, hidden_dim=128, num_labels=10,
    )  # fmt: skip


def mobilevit() -> nn.Module:
    return _built("MobileViTModel", "MobileViTConfig", trained_like=True, image_size=32, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16,
        16, 24, 24, 32],
    )  # fmt: skip


def regnet() -> nn.Module:
    return _built(
        "RegNetModel",
        "RegNetConfig",
        trained_like=True,
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        groups_width=8,
    )


def segformer() -> nn.Module:
    return _built("SegformerForSemanticSegmentation", "SegformerConfig", trained_like=True, num_encoder_blocks=2, depths=[1, 1],
        sr_ratios=[2, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2], decoder_hidden_size=32, num_labels=4,
    )  # fmt: skip


# --- multimodal and audio ------------------------------------------------------------------


def clip() -> nn.Module:
    import transformers

    torch.manual_seed(0)
    text = dict(vocab_size=100, max_position_embeddings=32, bos_token_id=0, eos_token_id=2, pad_token_id=1, **HIDDEN)
    vision = dict(image_size=32, patch_size=8, **HIDDEN)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    return transformers.CLIPModel(cfg).eval()


def wav2vec2() -> nn.Module:
    return _built(
        "Wav2Vec2Model", "Wav2Vec2Config", conv_dim=[16, 16], conv_stride=[5, 2], conv_kernel=[10, 3],
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, **HIDDEN,
    )  # fmt: skip


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder, as speech pipelines export it (log-mel frames in, states out)."""

    def __init__(self) -> None:
        super().__init__()
        import transformers

        torch.manual_seed(0)
        cfg = transformers.WhisperConfig(
            vocab_size=100, num_mel_bins=8, d_model=32, encoder_layers=2, encoder_attention_heads=2,
            decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
            max_source_positions=16, max_target_positions=16, pad_token_id=1, bos_token_id=2, eos_token_id=2,
            decoder_start_token_id=3,
        )  # fmt: skip
        self.encoder = transformers.WhisperModel(cfg).get_encoder().eval()

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features).last_hidden_state


# --- written in code: the hard-swish / squeeze-excite family (MobileNetV3) ---------------------


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(scale))))


class _InvertedResidual(nn.Module):
    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.block = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
            _SqueezeExcite(hidden),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class MobileNetV3Tiny(nn.Module):
    """MobileNetV3's blocks (hard-swish, squeeze-excite with hard-sigmoid, inverted residuals)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(_InvertedResidual(16, 4), _InvertedResidual(16, 3))
        self.head = nn.Sequential(nn.Linear(16, 64), nn.Hardswish(), nn.Linear(64, 10))
        for m in self.modules():  # non-trivial running statistics, as after training
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean((2, 3)))


IDS = "batch=2,seq=16:int64:0:100"
MASK = "batch=2,seq=16:int64:1:2"  # all ones: random zeros can mask every token of a row
IMAGE = "batch=2,3,32,32"
IMAGE_DYNAMIC = "batch=1,3,height=32,width=32"

#: factory -> its ``--input`` specs (one per forward argument, in order)
MODELS: dict[str, list[str]] = {
    "bert": [IDS, MASK],
    "distilbert": [IDS, MASK],
    "roberta": ["batch=2,seq=16:int64:2:100", MASK],
    "t5_encoder": [IDS, MASK],
    "t5": [IDS, MASK, "batch=2,tgt=8:int64:0:100"],
    "gpt2": [IDS],
    "llama": [IDS, MASK],
    "gpt2_cached": [IDS],  # + past_key_values.N.key/value, added by the export
    "llama_cached": [IDS],
    "vit": [IMAGE],
    "deit": [IMAGE],
    "swin": [IMAGE],
    "convnext": [IMAGE_DYNAMIC],
    "resnet": [IMAGE_DYNAMIC],
    "mobilenet_v2": [IMAGE],  # TF "same" padding depends on the size: traced, it is fixed
    "efficientnet": [IMAGE],
    "mobilevit": [IMAGE],
    "regnet": [IMAGE_DYNAMIC],
    "segformer": [IMAGE_DYNAMIC],
    "clip": ["batch=2,seq=12:int64:0:100", IMAGE, "batch=2,seq=12:int64:1:2"],
    "wav2vec2": ["batch=2,samples=400"],
    "WhisperEncoder": ["batch=2,8,32"],
    "MobileNetV3Tiny": [IMAGE_DYNAMIC],
}
