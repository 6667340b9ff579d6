"""Tests for tools/torch_llama.py and the committed reference fixtures.

Run: /usr/bin/python3 tools/torch_llama_test.py
"""

import json
import math
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_fixtures  # noqa: E402
import torch_llama  # noqa: E402

FIXTURES = make_reference_fixtures.DEFAULT_OUT


def numpy_forward(tensors, cfg, tokens):
    """A second, loop-based forward pass in numpy float64, written from the
    architecture independently of torch_llama: rotary positions as rotations
    of the pairs (i, i + d/2) by angle pos * inv_freq[i]."""
    c = torch_llama.LlamaConfig(cfg)
    w = {k: v.astype(np.float64) for k, v in tensors.items()}
    d, hd = c.hidden_size, c.head_dim
    inv_freq = torch_llama.rope_inv_freq(c).numpy()

    def norm(x, weight):
        return x / np.sqrt(np.mean(x * x) + c.rms_norm_eps) * weight

    def rotate(vec, pos):
        out = vec.copy()
        for i in range(hd // 2):
            a, b = vec[i], vec[i + hd // 2]
            ang = pos * inv_freq[i]
            out[i] = a * math.cos(ang) - b * math.sin(ang)
            out[i + hd // 2] = a * math.sin(ang) + b * math.cos(ang)
        return out

    def proj(x, name):
        y = w[name + ".weight"] @ x
        return y + w[name + ".bias"] if name + ".bias" in w else y

    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    keys = [[] for _ in range(c.num_layers)]
    values = [[] for _ in range(c.num_layers)]
    out = []
    for pos, tok in enumerate(tokens):
        x = w["model.embed_tokens.weight"][tok].copy()
        for li in range(c.num_layers):
            p = f"model.layers.{li}."
            h = norm(x, w[p + "input_layernorm.weight"])
            q = proj(h, p + "self_attn.q_proj").reshape(c.num_heads, hd)
            k = proj(h, p + "self_attn.k_proj").reshape(c.num_kv_heads, hd)
            v = proj(h, p + "self_attn.v_proj").reshape(c.num_kv_heads, hd)
            keys[li].append([rotate(k[j], pos) for j in range(len(k))])
            values[li].append(v)
            att = np.zeros((c.num_heads, hd))
            for hh in range(c.num_heads):
                kvh = hh * c.num_kv_heads // c.num_heads
                qr = rotate(q[hh], pos)
                s = np.array([qr @ keys[li][t][kvh] for t in range(pos + 1)])
                s = s / math.sqrt(hd)
                pr = np.exp(s - s.max())
                pr = pr / pr.sum()
                att[hh] = sum(pr[t] * values[li][t][kvh]
                              for t in range(pos + 1))
            x = x + proj(att.reshape(-1), p + "self_attn.o_proj")
            h = norm(x, w[p + "post_attention_layernorm.weight"])
            g = w[p + "mlp.gate_proj.weight"] @ h
            u = w[p + "mlp.up_proj.weight"] @ h
            x = x + w[p + "mlp.down_proj.weight"] @ (g / (1 + np.exp(-g)) * u)
        out.append(head @ norm(x, w["model.norm.weight"]))
    return np.array(out)


class ReferenceFixturesTest(unittest.TestCase):
    def test_committed_fixtures_match_an_independent_numpy_forward(self):
        for case in make_reference_fixtures.CASES:
            with self.subTest(case=case):
                d = os.path.join(FIXTURES, case)
                with open(os.path.join(d, "config.json")) as f:
                    cfg = json.load(f)
                with open(os.path.join(d, "reference.json")) as f:
                    ref = json.load(f)
                tensors = torch_llama.read_safetensors(
                    os.path.join(d, "model.safetensors"))
                got = numpy_forward(tensors, cfg, ref["tokens"])
                want = np.array(ref["logits"])
                self.assertEqual(want.shape,
                                 (len(ref["tokens"]), cfg["vocab_size"]))
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    def test_fixture_sets_differ_where_their_configs_differ(self):
        # Guards against a config field being silently ignored: the same
        # weights under the base config give different logits.
        d = os.path.join(FIXTURES, "rope_llama3")
        model, cfg = torch_llama.load_model(d, dtype=torch.float64)
        with open(os.path.join(d, "reference.json")) as f:
            ref = json.load(f)
        plain = dict(cfg)
        del plain["rope_scaling"]
        other = torch_llama.LlamaForCausalLM(plain).double()
        other.load_state_dict(model.state_dict())
        tokens = torch.tensor([ref["tokens"]])
        with torch.no_grad():
            diff = (model(tokens) - other(tokens)).abs().max().item()
        self.assertGreater(diff, 1e-2)


class RopeTest(unittest.TestCase):
    def config(self, scaling):
        return torch_llama.LlamaConfig(dict(
            make_reference_fixtures.BASE, rope_scaling=scaling))

    def test_llama3_keeps_blends_and_divides_by_band(self):
        c = self.config({"rope_type": "llama3", "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 32})
        base = 10000.0 ** (-np.arange(0, 16, 2) / 16)
        got = torch_llama.rope_inv_freq(c).numpy()
        self.assertAlmostEqual(got[0], base[0])  # wavelength 6.3 < 8: kept
        # wavelength 19.9: 32/19.9 = 1.61 -> s = 0.203
        s = (32 / (2 * math.pi / base[1]) - 1) / 3
        self.assertAlmostEqual(got[1], (1 - s) * base[1] / 8 + s * base[1])
        np.testing.assert_allclose(got[2:], base[2:] / 8)  # wavelength > 32

    def test_linear_divides_every_frequency(self):
        c = self.config({"type": "linear", "factor": 4.0})
        base = 10000.0 ** (-np.arange(0, 16, 2) / 16)
        np.testing.assert_allclose(torch_llama.rope_inv_freq(c).numpy(),
                                   base / 4)

    def test_scores_depend_only_on_relative_position(self):
        c = self.config(None)
        inv = torch_llama.rope_inv_freq(c)
        q, k = torch.randn(16, dtype=torch.float64), torch.randn(
            16, dtype=torch.float64)

        def score(pq, pk):
            cos, sin = torch_llama.rope_cos_sin(
                inv, torch.tensor([pq, pk]), torch.float64)
            return (torch_llama.apply_rope(q, cos[0], sin[0]) @
                    torch_llama.apply_rope(k, cos[1], sin[1])).item()

        self.assertAlmostEqual(score(7, 3), score(24, 20))
        self.assertNotAlmostEqual(score(7, 3), score(7, 4))


class ModelTest(unittest.TestCase):
    def make(self, **overrides):
        cfg = dict(make_reference_fixtures.BASE, **overrides)
        torch.manual_seed(0)
        model = torch_llama.LlamaForCausalLM(cfg).double()
        make_reference_fixtures.random_weights(
            model, torch.Generator().manual_seed(1))
        return model, cfg

    def test_logits_do_not_depend_on_later_tokens(self):
        model, _ = self.make()
        a = torch.tensor([[5, 6, 7, 8, 9]])
        b = torch.tensor([[5, 6, 7, 40, 41]])
        with torch.no_grad():
            la, lb = model(a), model(b)
        torch.testing.assert_close(la[0, :3], lb[0, :3])
        self.assertGreater((la[0, 3] - lb[0, 3]).abs().max().item(), 1e-3)

    def test_shifting_every_position_leaves_logits_unchanged(self):
        # Rotary attention sees only relative positions.
        model, _ = self.make()
        t = torch.tensor([[5, 6, 7]])
        with torch.no_grad():
            torch.testing.assert_close(model(t), model(t, start_pos=9))

    def test_gqa_equals_mha_with_duplicated_kv_heads(self):
        gqa, cfg = self.make(num_attention_heads=4, num_key_value_heads=2,
                             hidden_size=64)
        mha = torch_llama.LlamaForCausalLM(
            dict(cfg, num_key_value_heads=4)).double()
        state = gqa.state_dict()
        for name in list(state):
            if name.endswith(("k_proj.weight", "v_proj.weight")):
                w = state[name].view(2, 16, 64)
                state[name] = w.repeat_interleave(2, dim=0).reshape(64, 64)
        mha.load_state_dict(state)
        t = torch.tensor([[1, 2, 3, 4, 5, 6]])
        with torch.no_grad():
            torch.testing.assert_close(gqa(t), mha(t))


class SafetensorsTest(unittest.TestCase):
    def test_bf16_rounds_to_nearest_even(self):
        x = np.array([1 + 2**-8, 1 + 3 * 2**-8, -2.5, 1 + 2**-8 + 2**-20],
                     dtype=np.float32)
        got = torch_llama.bf16_bits_to_float32(
            torch_llama.float32_to_bf16_bits(x))
        np.testing.assert_array_equal(
            got, np.array([1.0, 1 + 2**-6, -2.5, 1 + 2**-7], np.float32))

    def test_round_trip_in_every_dtype(self):
        x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
        with tempfile.TemporaryDirectory() as tmp:
            for dtype, tol in (("F32", 0), ("F16", 2e-3), ("BF16", 2e-2)):
                path = os.path.join(tmp, dtype)
                torch_llama.write_safetensors(path, {"a.b": x}, dtype)
                with open(path, "rb") as f:
                    n = int.from_bytes(f.read(8), "little")
                    header = json.loads(f.read(n))
                self.assertEqual(n % 8, 0)
                self.assertEqual(header["a.b"]["dtype"], dtype)
                got = torch_llama.read_safetensors(path)["a.b"]
                self.assertEqual(got.shape, (2, 3, 4))
                np.testing.assert_allclose(got, x, atol=tol, rtol=tol)

    def test_truncated_file_is_rejected(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.safetensors")
            torch_llama.write_safetensors(path, {"w": np.ones(8)})
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(data[:-4])
            with self.assertRaisesRegex(ValueError, "offsets out of range"):
                torch_llama.read_safetensors(path)


class CheckpointTest(unittest.TestCase):
    def test_tied_checkpoint_omits_lm_head_and_reloads_tied(self):
        cfg = dict(make_reference_fixtures.BASE, tie_word_embeddings=True)
        model = torch_llama.LlamaForCausalLM(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "m")
            torch_llama.save_model(d, model, cfg)
            names = torch_llama.read_safetensors(
                os.path.join(d, "model.safetensors"))
            self.assertNotIn("lm_head.weight", names)
            loaded, _ = torch_llama.load_model(d)
            self.assertIs(loaded.lm_head.weight,
                          loaded.model.embed_tokens.weight)

    def test_save_replaces_directory_and_leaves_no_temporaries(self):
        cfg = dict(make_reference_fixtures.BASE)
        model = torch_llama.LlamaForCausalLM(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "m")
            os.makedirs(d)
            with open(os.path.join(d, "stale.txt"), "w") as f:
                f.write("old")
            torch_llama.save_model(d, model, cfg,
                                   extra_files={"tokenizer.json": "{}"})
            self.assertEqual(sorted(os.listdir(tmp)), ["m"])
            self.assertEqual(sorted(os.listdir(d)),
                             ["config.json", "model.safetensors",
                              "tokenizer.json"])

    def test_missing_tensor_is_named(self):
        cfg = dict(make_reference_fixtures.BASE)
        model = torch_llama.LlamaForCausalLM(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            torch_llama.save_model(tmp + "/m", model, cfg)
            tensors = torch_llama.read_safetensors(
                tmp + "/m/model.safetensors")
            del tensors["model.norm.weight"]
            torch_llama.write_safetensors(tmp + "/m/model.safetensors",
                                          tensors)
            with self.assertRaisesRegex(ValueError, "model.norm.weight"):
                torch_llama.load_model(tmp + "/m")


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main()
