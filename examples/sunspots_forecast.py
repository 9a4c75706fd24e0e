"""Many-to-one regression: forecast yearly sunspot numbers 1, 2 and 3 years ahead.

Data: NOAA yearly sunspots (public domain; bundled), the classic split: train 1700-1920,
test 1921-1987. Windows of 12 years -> the next 3 (``rnnkit.data.make_windows``);
one Dense head emits the whole horizon. Prints test RMSE per lead time beside the
persistence baseline (the last seen year, repeated), averaged over --seeds seeds.

    python examples/sunspots_forecast.py [--cell gru] [--horizon 3] [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.data import make_windows
from rnnkit.datasets import load_sunspots
from rnnkit.models import Forecaster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--lookback", type=int, default=12)
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    d = load_sunspots()
    L, H = args.lookback, args.horizon
    X, y = make_windows(d.train, L, H)
    Xt, yt = make_windows(np.concatenate([d.train[-L:], d.test]), L, H)  # every target year in 1921-1987
    errors = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = Forecaster(1, H, units=32, cell=args.cell, dropout=0.2).adapt(d.train)  # standardises inside
        model.compile(rnnkit.optimizers.Adam(3e-3), loss="mse")
        stop = rnnkit.callbacks.EarlyStopping(patience=30, restore_best_weights=True)
        model.fit(X, y, batch_size=16, epochs=args.epochs, validation_split=0.2, callbacks=[stop], verbose=0)
        errors.append(np.sqrt(((model.predict(Xt, verbose=0) - yt) ** 2).mean(0)))  # (H,) RMSE per lead time
        print(f"seed {seed}: RMSE by lead time {[round(float(e), 1) for e in errors[-1]]}")
    rmse = np.mean(errors, 0)
    persistence = np.sqrt(((Xt[:, -1, :] - yt) ** 2).mean(0))
    for h in range(H):
        print(f"{h + 1} year(s) ahead: test RMSE {rmse[h]:.1f} (+- {np.std(np.array(errors)[:, h]):.1f} over seeds)"
              f"  (persistence baseline {persistence[h]:.1f})")
    print(f"all lead times: test RMSE {np.sqrt(np.mean(rmse ** 2)):.1f}  (persistence baseline "
          f"{np.sqrt(np.mean(persistence ** 2)):.1f}; {len(Xt)} test windows)  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
