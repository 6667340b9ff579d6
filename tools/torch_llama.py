"""A plain PyTorch model of the Llama family, and safetensors by hand.

This is Tandem's reference for the engine's numerics and the trainer of the
default model. It follows the semantics of Hugging Face checkpoints whose
`config.json` names LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM:

  tokens -> embed_tokens -> N x [ x += attn(rmsnorm(x)); x += mlp(rmsnorm(x)) ]
         -> rmsnorm -> lm_head -> logits

* RMSNorm: x * rsqrt(mean(x^2) + eps) * w, reduced in at least float32.
* Rotary positions in the rotate-half convention: inv_freq[i] =
  theta^(-2i/d) for i < d/2; angles = position * inv_freq, duplicated as
  [angles, angles]; q' = q * cos + rotate_half(q) * sin with
  rotate_half([x1, x2]) = [-x2, x1]. Optional rescaling: "linear" (inv_freq /
  factor) and "llama3" (see `rope_inv_freq`).
* Grouped-query attention with a causal mask: query head h reads kv head
  h // (num_heads / num_kv_heads); scores scaled by 1/sqrt(head_dim);
  head_dim may differ from hidden_size / num_heads.
* Bias: Qwen2 has biases on q, k and v; Llama with `attention_bias` has them
  on q, k, v and o (as Hugging Face does). Mistral has none.
* SwiGLU MLP: down(silu(gate(x)) * up(x)).
* lm_head tied to embed_tokens when `tie_word_embeddings` is true; a tied
  checkpoint stores no `lm_head.weight`.

Module names match the Hugging Face tensor names, so `state_dict()` keys are
the checkpoint's keys (model.layers.{i}.self_attn.q_proj.weight, ...).

Run with Debian's interpreter: /usr/bin/python3 (python3-torch, numpy).
"""

import json
import math
import os
import shutil
import struct
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
)


# --------------------------------------------------------------------------
# Configuration


class LlamaConfig:
    """The fields of a Hugging Face config.json that the forward pass uses."""

    def __init__(self, cfg):
        archs = cfg.get("architectures") or ["LlamaForCausalLM"]
        self.architecture = archs[0]
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"unsupported architecture {self.architecture!r}")
        self.vocab_size = int(cfg["vocab_size"])
        self.hidden_size = int(cfg["hidden_size"])
        self.intermediate_size = int(cfg["intermediate_size"])
        self.num_layers = int(cfg["num_hidden_layers"])
        self.num_heads = int(cfg["num_attention_heads"])
        kv = cfg.get("num_key_value_heads")
        self.num_kv_heads = int(kv) if kv is not None else self.num_heads
        hd = cfg.get("head_dim")
        self.head_dim = (int(hd) if hd is not None
                         else self.hidden_size // self.num_heads)
        self.rms_norm_eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(cfg.get("rope_theta", 10000.0))
        self.rope_scaling = cfg.get("rope_scaling")
        self.tie_word_embeddings = bool(cfg.get("tie_word_embeddings", False))
        self.max_position_embeddings = int(
            cfg.get("max_position_embeddings", 2048))
        if self.architecture == "Qwen2ForCausalLM":
            self.qkv_bias, self.o_bias = True, False
        elif self.architecture == "MistralForCausalLM":
            self.qkv_bias, self.o_bias = False, False
        else:
            bias = bool(cfg.get("attention_bias", False))
            self.qkv_bias, self.o_bias = bias, bias
        if cfg.get("mlp_bias"):
            raise ValueError("mlp_bias is not supported")
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError("num_attention_heads must be a multiple of "
                             "num_key_value_heads")
        if self.head_dim % 2 != 0:
            raise ValueError("head_dim must be even for rotary positions")


# --------------------------------------------------------------------------
# Rotary positions


def rope_inv_freq(config, dtype=torch.float64):
    """Returns the rotary inverse frequencies [head_dim / 2] after scaling.

    "linear": every frequency is divided by `factor` (positions stretched).
    "llama3": with L = original_max_position_embeddings, a frequency whose
    wavelength 2*pi/f exceeds L / low_freq_factor is divided by `factor`; one
    whose wavelength is below L / high_freq_factor is kept; in between it is
    blended, (1 - s) * f / factor + s * f with
    s = (L / wavelength - low_freq_factor) / (high - low_freq_factor).
    """
    d = config.head_dim
    exponents = torch.arange(0, d, 2, dtype=torch.float64) / d
    inv_freq = 1.0 / (config.rope_theta ** exponents)
    scaling = config.rope_scaling
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        factor = float(scaling.get("factor", 1.0))
        if kind == "linear":
            inv_freq = inv_freq / factor
        elif kind == "llama3":
            low = float(scaling.get("low_freq_factor", 1.0))
            high = float(scaling.get("high_freq_factor", 4.0))
            old_len = float(scaling["original_max_position_embeddings"])
            wavelen = 2.0 * math.pi / inv_freq
            blend = (old_len / wavelen - low) / (high - low)
            blended = (1.0 - blend) * inv_freq / factor + blend * inv_freq
            scaled = torch.where(wavelen > old_len / low, inv_freq / factor,
                                 blended)
            inv_freq = torch.where(wavelen < old_len / high, inv_freq, scaled)
        elif kind != "default":
            raise ValueError(f"unsupported rope scaling {kind!r}")
    return inv_freq.to(dtype)


def rope_cos_sin(inv_freq, positions, dtype):
    """cos and sin, each [T, head_dim], for integer `positions` [T]."""
    angles = positions.to(inv_freq.dtype)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] over the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """Rotates x [B, heads, T, head_dim] by cos/sin [T, head_dim]."""
    return x * cos + rotate_half(x) * sin


# --------------------------------------------------------------------------
# Layers


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        wide = torch.promote_types(x.dtype, torch.float32)
        xw = x.to(wide)
        xw = xw * torch.rsqrt(xw.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xw.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_heads, self.num_kv_heads = c.num_heads, c.num_kv_heads
        self.head_dim = c.head_dim
        q_dim, kv_dim = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, q_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, kv_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, kv_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(q_dim, c.hidden_size, bias=c.o_bias)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        # q [B, heads, T, hd]; k, v [B, kv_heads, T, hd]
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = self.num_heads // self.num_kv_heads
        if group > 1:  # kv head j serves query heads j*group .. j*group+g-1
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(mask, float("-inf"))  # [B, h, T, T]
        probs = torch.softmax(scores, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(b, t, -1)  # [B, T, q_dim]
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size,
                                   bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size,
                                 bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size,
                                   bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """The whole model; `forward(tokens)` returns logits [B, T, vocab]."""

    def __init__(self, config_dict):
        super().__init__()
        self.config_dict = dict(config_dict)
        self.config = LlamaConfig(config_dict)
        self.model = LlamaBody(self.config)
        self.lm_head = nn.Linear(self.config.hidden_size,
                                 self.config.vocab_size, bias=False)
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # float64, kept out of the module's tensors so .to(dtype) leaves it.
        self.inv_freq = rope_inv_freq(self.config)

    def forward(self, tokens, start_pos=0):
        """tokens [B, T] int64 at positions start_pos.. -> logits [B, T, V]."""
        t = tokens.shape[1]
        x = self.model.embed_tokens(tokens)  # [B, T, hidden]
        positions = torch.arange(start_pos, start_pos + t)
        cos, sin = rope_cos_sin(self.inv_freq, positions, x.dtype)
        cos, sin = cos.to(x.device), sin.to(x.device)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))

    def checkpoint_tensors(self):
        """Name -> tensor, as a checkpoint stores them (no tied lm_head)."""
        out = {}
        for name, tensor in self.state_dict().items():
            if name == "lm_head.weight" and self.config.tie_word_embeddings:
                continue
            out[name] = tensor.detach()
        return out


# --------------------------------------------------------------------------
# safetensors: u64 LE header length, JSON header, then raw little-endian data.
# The header maps each tensor name to {"dtype", "shape", "data_offsets":
# [begin, end)} with offsets relative to the first byte after the header.

_ITEM_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


def float32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, rounding to nearest even."""
    bits = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    out = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    out[nan] = 0x7FC0
    return out


def bf16_bits_to_float32(bits):
    """uint16 bfloat16 bits -> float32 array (exact)."""
    return (bits.astype("<u4") << 16).view("<f4")


def round_to_bf16(t):
    """A float tensor rounded to the nearest bfloat16 value, as float32."""
    bits = float32_to_bf16_bits(t.detach().float().numpy())
    return torch.from_numpy(bf16_bits_to_float32(bits).copy())


def _encode(array, dtype):
    a = np.asarray(array)
    if dtype == "F64":
        return a.astype("<f8").tobytes()
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f4").astype("<f2").tobytes()
    if dtype == "BF16":
        return float32_to_bf16_bits(a.astype("<f4")).astype("<u2").tobytes()
    raise ValueError(f"unsupported dtype {dtype!r}")


def _decode(raw, dtype, shape):
    if dtype == "F64":
        a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    elif dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        a = bf16_bits_to_float32(np.frombuffer(raw, dtype="<u2"))
    else:
        raise ValueError(f"unsupported dtype {dtype!r}")
    return a.reshape(shape)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """Writes name -> tensor/array to `path` in `dtype` (F32, F16, BF16)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        value = tensors[name]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().double().numpy()
        blob = _encode(value, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(value)),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """Reads `path` -> dict name -> numpy array (float32, or float64 for F64).

    Raises ValueError on a malformed file.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        if dtype not in _ITEM_SIZE:
            raise ValueError(f"{path}: {name}: unsupported dtype {dtype}")
        if not 0 <= begin <= end <= len(body):
            raise ValueError(f"{path}: {name}: offsets out of range")
        if end - begin != count * _ITEM_SIZE[dtype]:
            raise ValueError(f"{path}: {name}: size does not match shape")
        out[name] = _decode(bytes(body[begin:end]), dtype, shape)
    return out


# --------------------------------------------------------------------------
# Checkpoint directories


def _read_checkpoint_tensors(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(os.path.join(directory, name)))
    return tensors


def load_model(directory, dtype=torch.float32):
    """Loads a Hugging Face model directory -> (model, config dict).

    Weights stored as F16 or BF16 are converted exactly to `dtype`.
    Raises ValueError when a tensor is missing, unexpected or misshaped.
    """
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    model = LlamaForCausalLM(config)
    tensors = _read_checkpoint_tensors(directory)
    expected = model.checkpoint_tensors()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{directory}: missing {missing}, unexpected {extra}")
    state = {}
    for name, ref in expected.items():
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise ValueError(f"{directory}: {name} has shape "
                             f"{tensors[name].shape}, expected {ref.shape}")
        state[name] = torch.from_numpy(np.array(tensors[name]))
    model.load_state_dict(state, strict=False)
    model.to(dtype)
    model.eval()
    return model, config


def save_model(directory, model, config, dtype="F32", extra_files=None):
    """Writes config.json, model.safetensors and `extra_files` (name ->
    str or bytes) to `directory`, atomically: everything is written to a
    temporary sibling directory which then replaces `directory`."""
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(tmp, "model.safetensors"),
                          model.checkpoint_tensors(), dtype)
        for name, content in (extra_files or {}).items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(os.path.join(tmp, name), mode) as f:
                f.write(content)
        os.chmod(tmp, 0o755)
        old = None
        if os.path.exists(directory):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rmdir(old)
            os.rename(directory, old)
        os.rename(tmp, directory)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
