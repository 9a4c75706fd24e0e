"""A word-level language model as torch users write it, with the recurrent module swappable.

    python examples/torch_word_lm.py --impl torch     # torch.nn.LSTM
    python examples/torch_word_lm.py --impl rnnkit    # rnnkit.nn.LSTM: only that import changes

Embedding -> 2-layer LSTM -> Linear on the words of CPython's pydoc topics (the text bundled
with every Python, ``rnnkit.datasets.load_pydoc_text``), trained with truncated BPTT: the hidden
state is carried from window to window and detached ("repackaged") between them, gradients are
clipped with ``clip_grad_norm_``. Then ``torch.save(model)``, ``torch.load`` with
``weights_only=True`` under ``safe_globals`` of the classes it holds, and ``torch.onnx.export``
(dynamo) of the loaded model, run in onnxruntime when it is installed.

With the same seed both implementations draw the same weights and the same dropout masks, so
they print the same losses (to float32 rounding); the wall times are what differs.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import re
import time

import torch
import torch.nn as tnn

from rnnkit.datasets import load_pydoc_text


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text) + ["<eos>"]


class Corpus:
    """Word ids of the train/valid/test splits; words outside the ``vocab`` most frequent are <unk>."""

    def __init__(self, vocab: int) -> None:
        data = load_pydoc_text()
        counts = collections.Counter(words(data.train))
        self.itos = ["<unk>"] + [w for w, _ in counts.most_common(vocab - 1)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.train, self.valid, self.test = (self.ids(t) for t in (data.train, data.valid, data.test))

    def ids(self, text: str) -> torch.Tensor:
        return torch.tensor([self.stoi.get(w, 0) for w in words(text)], dtype=torch.long)


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()  # (T_total, B)


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


class RNNModel(tnn.Module):
    """Embedding -> LSTM -> Linear, as in torch's examples/word_language_model."""

    def __init__(self, lstm_cls, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float) -> None:
        super().__init__()
        self.drop = tnn.Dropout(dropout)
        self.encoder = tnn.Embedding(ntoken, ninp)
        self.rnn = lstm_cls(ninp, nhid, nlayers)
        self.decoder = tnn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        tnn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        tnn.init.zeros_(self.decoder.bias)
        tnn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]):
        emb = self.drop(self.encoder(x))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    """Detach the state from the graph of the previous window."""
    return tuple(v.detach() for v in h)


def evaluate(model: RNNModel, source: torch.Tensor, bptt: int, bsz: int) -> float:
    model.eval()
    total, count = 0.0, 0
    hidden = model.init_hidden(bsz)
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, bptt):
            data, targets = get_batch(source, i, bptt)
            output, hidden = model(data, hidden)
            total += len(data) * tnn.functional.cross_entropy(output.view(-1, output.size(-1)), targets).item()
            count += len(data)
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["torch", "rnnkit"], default="rnnkit")
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--emsize", type=int, default=64)
    parser.add_argument("--nhid", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-windows", type=int, default=60, help="BPTT windows per epoch (0: all)")
    parser.add_argument("--lr", type=float, default=20.0)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default="/tmp/torch_word_lm.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.impl == "torch":
        from torch.nn import LSTM
    else:
        from rnnkit.nn import LSTM

    corpus = Corpus(args.vocab)
    train = batchify(corpus.train, args.batch_size)
    valid = batchify(corpus.valid, 10)[:1000]  # the first 1,000 steps of each of 10 streams
    model = RNNModel(LSTM, len(corpus.itos), args.emsize, args.nhid, 2, args.dropout)
    criterion = tnn.CrossEntropyLoss()
    start = time.perf_counter()
    losses = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        hidden = model.init_hidden(args.batch_size)
        total, n = 0.0, 0
        for k, i in enumerate(range(0, train.size(0) - 1, args.bptt)):
            if args.max_windows and k == args.max_windows:
                break
            data, targets = get_batch(train, i, args.bptt)
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, len(corpus.itos)), targets)
            loss.backward()
            tnn.utils.clip_grad_norm_(model.parameters(), args.clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-args.lr)
            total += loss.item()
            n += 1
        val = evaluate(model, valid, args.bptt, 10)
        losses.append({"epoch": epoch, "train_loss": total / n, "valid_loss": val, "valid_ppl": math.exp(val)})
        print(f"epoch {epoch}: train loss {total / n:.6f}  valid loss {val:.6f}  valid ppl {math.exp(val):.2f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    train_seconds = time.perf_counter() - start

    torch.save(model, args.save)
    safe = [RNNModel, LSTM, tnn.Embedding, tnn.Linear, tnn.Dropout, tnn.CrossEntropyLoss]
    with torch.serialization.safe_globals(safe):
        loaded = torch.load(args.save, weights_only=True)
    loaded.eval()
    data, _ = get_batch(valid, 0, args.bptt)
    with torch.no_grad():
        same = torch.equal(loaded(data, loaded.init_hidden(10))[0], model.eval()(data, model.init_hidden(10))[0])
    print(f"torch.save -> torch.load(weights_only=True) under safe_globals: outputs identical = {same}")

    class Step(tnn.Module):  # the state as inputs, so the graph is one step of generation
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, x, h, c):
            out, (h, c) = self.lm(x, (h, c))
            return out, h, c

    h, c = loaded.init_hidden(10)
    dims = torch.export.Dim("time", min=2), torch.export.Dim("batch", min=2)
    program = torch.onnx.export(Step(loaded).eval(), (data, h, c), dynamo=True, verbose=False,
                                dynamic_shapes=({0: dims[0], 1: dims[1]}, {1: dims[1]}, {1: dims[1]}))
    onnx_max_err = None
    try:
        import onnxruntime as ort
    except ImportError:
        print("torch.onnx.export: done (onnxruntime not installed, not run)")
    else:
        buffer = io.BytesIO(program.model_proto.SerializeToString())
        session = ort.InferenceSession(buffer.getvalue())
        x2 = valid[:17, :7]  # a length and a batch size it was not exported at
        h2, c2 = loaded.init_hidden(7)
        try:
            got = session.run(None, {i.name: v.numpy() for i, v in zip(session.get_inputs(), (x2, h2, c2))})[0]
        except Exception as e:  # torch.nn.LSTM's graph fixes T at the traced length (2.13)
            print(f"torch.onnx.export(dynamo=True) -> onnxruntime at T=17, B=7 failed: {str(e).splitlines()[0][:300]}")
        else:
            with torch.no_grad():
                expected = loaded(x2, (h2, c2))[0]
            onnx_max_err = float((torch.from_numpy(got) - expected).abs().max())
            print(f"torch.onnx.export(dynamo=True) -> onnxruntime at T=17, B=7: max |difference| {onnx_max_err:.2e}")
    print(json.dumps({"impl": args.impl, "train_seconds": round(train_seconds, 2), "losses": losses,
                      "onnx_max_err": onnx_max_err}))


if __name__ == "__main__":
    main()
