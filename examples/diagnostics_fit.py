"""The GradientFlow callback inside Keras-style ``fit``: SimpleRNN against LSTM on the adding problem.

Both models see the same data (T = 100) and the same budget. The callback measures
||dL/dh_t|| per time step on a fixed batch before training and after every epoch, records
every clipping event from fit's logs, and warns once per layer when the gradient reaching
h_1 is negligible. Writes fit_heatmap.png, fit_curves.png and fit_clipping.png into --out.

    python examples/diagnostics_fit.py --out fit_out
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from rnnkit.datasets.long_range import ADDING_TRIVIAL_MSE, adding_problem
from rnnkit.diagnostics import GradientFlow, plot_clipping, plot_flow_curves, plot_flow_heatmap
from rnnkit.layers import LSTM, Dense, SimpleRNN
from rnnkit.training import Sequential


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("fit_out"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = adding_problem(args.samples, args.length, seed=0)
    x_test, y_test = adding_problem(1000, args.length, seed=1)
    maps, epochs, curves, clips = {}, {}, {}, {}
    for name, layer in (("SimpleRNN", SimpleRNN(args.units, name="simple_rnn")), ("LSTM", LSTM(args.units, name="lstm"))):
        start = time.perf_counter()
        model = Sequential([layer, Dense(1)])
        model.compile(optimizer="adam", loss="mse", global_clipnorm=1.0)
        flow = GradientFlow(x[:100], y[:100])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, epochs=args.epochs, batch_size=50, callbacks=[flow], verbose=0)
        mse = model.evaluate(x_test, y_test, verbose=0)
        mse = mse[0] if isinstance(mse, (list, tuple)) else mse
        summary = flow.clip_summary()
        print(f"{name}: test MSE {float(mse):.4f} (trivial {ADDING_TRIVIAL_MSE:.4f}); "
              f"||dL/dh_1||/||dL/dh_T|| by epoch: {' '.join(f'{r:.0e}' for r in flow.ratios())}; "
              f"clipped {int(summary['clipped'])}/{int(summary['steps'])} steps, median norm before clipping "
              f"{summary['median_norm']:.2f}; {time.perf_counter() - start:.0f} s")
        for w in caught:
            if "gradients" in str(w.message):
                print(f"  {w.category.__name__}: {w.message}")
        maps[name], epochs[name] = flow.heatmap(), flow.epochs
        curves[f"{name} (init)"] = flow.flows[0][flow.keys[0]].by_distance()
        curves[f"{name} (trained)"] = flow.flows[-1][flow.keys[0]].by_distance()
        clips[name] = flow.batch_norms
    plot_flow_heatmap(maps, args.out / "fit_heatmap.png", epochs=epochs, title=f"adding problem T={args.length}, fit + GradientFlow")
    plot_flow_curves(curves, args.out / "fit_curves.png", title=f"adding problem T={args.length}")
    plot_clipping(clips, args.out / "fit_clipping.png", threshold=1.0, title="global_clipnorm=1.0")
    print(f"wrote fit_heatmap.png, fit_curves.png, fit_clipping.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
