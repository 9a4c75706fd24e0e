"""One-to-many: an image sets a GRU's initial state, and the GRU spells the digit's word.

Data: 1,797 UCI handwritten digits (8x8, CC BY 4.0; bundled), captioned "zero".."nine".
Trained with teacher forcing (compile/fit on [image, <bos> s e v e n], target
s e v e n <eos>); at test time it is fed back its own letters. Prints caption accuracy
beside the majority-caption baseline, and compares with examples/one_to_one.py.

    python examples/digit_captions.py [--epochs 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

import rnnkit
from rnnkit.datasets import load_digits_captions
from rnnkit.models import ConditionalGenerator, TokenVocab, sequence_accuracy, token_error_rate
from rnnkit.models.vocab import encode_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    d = load_digits_captions()
    words, words_t = [str(w) for w in d.y_train], [str(w) for w in d.y_test]
    vocab = TokenVocab.fit(words)  # letters, after <pad> <bos> <eos>
    Y = encode_batch(vocab, words, add_bos=True, add_eos=True)  # (N, 7)
    model = ConditionalGenerator(64, len(vocab), embedding_dim=16, units=64, cell=args.cell, dropout=0.1, max_len=8)
    model.compile(rnnkit.optimizers.Adam(3e-3), loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit([d.x_train, Y[:, :-1]], Y[:, 1:], batch_size=32, epochs=args.epochs, validation_split=0.1, verbose=0)

    pred = ["".join(vocab.decode(r)) for r in model.generate(d.x_test)]  # greedy, its own letters fed back
    sampled = ["".join(vocab.decode(r)) for r in
               model.generate(d.x_test[:8], temperature=1.0, generator=torch.Generator().manual_seed(0))]
    print("  greedy: ", pred[:8], "\n  sampled:", sampled)
    top = Counter(words).most_common(1)[0][0]
    baseline = sequence_accuracy([top] * len(words_t), words_t)
    print(f"test caption accuracy {sequence_accuracy(pred, words_t):.4f}  (majority-caption baseline {baseline:.4f}; "
          f"letter error rate {token_error_rate([list(p) for p in pred], [list(w) for w in words_t]):.4f}; "
          f"{len(words_t)} images)  {time.perf_counter() - start:.0f} s")
    print(f"captions that are not digit words: {sum(p not in set(words) for p in pred)}")


if __name__ == "__main__":
    main()
