"""A tiny random-weight llama model, written as GGUF by the tests themselves (no download).

Not a fake: a real GGUF file for the real llama.cpp server (tests/fakes/llama_server.py), which
writes it with ``write_tiny_llama(path)`` before it starts.

Two layers, a 64-wide embedding and a byte-level BPE vocabulary: every byte is a token, a few
merges make the tokenizer a real BPE one, and a chat template lets llama.cpp's server format chat
requests. The weights are seeded, so the model is the same file every run; what it says is noise,
but it says it token by token exactly as a real model does.

So that one generated token is one streamed chunk with visible text (what the tests count), the
model only ever emits printable ASCII other than ``<`` (which could begin the end-of-sequence
text, and a server holds such text back) and never its end-of-sequence token: one dimension of
the residual stream is a constant no layer writes to, and the output weights give every other
token a large negative logit along it. A request therefore always runs to its ``max_tokens``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX = 256  # the server's context; the model is trained on nothing, so any length works

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

_MERGES = ("Ġ t", "Ġ a", "h e", "i n", "r e")
_SPECIAL = ("<|bos|>", "<|eos|>")


def _byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable character mapping (what byte-level BPE vocabularies
    are written in)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    by_byte = dict(zip(keep, chars, strict=True))
    return [chr(by_byte[b]) for b in range(256)]


def _emittable(token: str) -> bool:
    text = _decode(token)
    return bool(text) and all(0x20 <= b <= 0x7E and b != ord("<") for b in text)


def _decode(token: str) -> bytes:
    """A vocabulary entry's bytes (b"" for special tokens)."""
    if token in _SPECIAL:
        return b""
    by_symbol = {sym: b for b, sym in enumerate(_byte_symbols())}
    return bytes(by_symbol[c] for c in token)


def write_tiny_llama(path: Path, seed: int = 7) -> Path:
    """Write the model to ``path`` and return it."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens = _byte_symbols() + [m.replace(" ", "") for m in _MERGES] + list(_SPECIAL)
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(_SPECIAL))
    types += [gguf.TokenType.CONTROL] * len(_SPECIAL)
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("gpm-tiny-test-llama")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(_MERGES))
    writer.add_bos_token_id(tokens.index("<|bos|>"))
    writer.add_eos_token_id(tokens.index("<|eos|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    embd = weight(n_vocab, N_EMBD)
    embd[:, 0] = 100.0  # the constant dimension
    out = weight(n_vocab, N_EMBD)
    out[:, 0] = [0.0 if _emittable(t) else -50.0 for t in tokens]
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", out)
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{blk}.{name}.weight", weight(N_EMBD, N_EMBD))
        attn_out = weight(N_EMBD, N_EMBD)
        attn_out[0, :] = 0.0  # no layer writes to the constant dimension
        writer.add_tensor(f"{blk}.attn_output.weight", attn_out)
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(N_FF, N_EMBD))
        ffn_down = weight(N_EMBD, N_FF)
        ffn_down[0, :] = 0.0
        writer.add_tensor(f"{blk}.ffn_down.weight", ffn_down)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
