"""Plant small bugs in the hand-derived backward passes, one at a time, and check the tests catch each.

Each mutation replaces one exact snippet of ``src/rnnkit/ops``, ``src/rnnkit/engine``, the C++ loop
(``engine/csrc/recurrence.cpp``) or the minGRU/minLSTM scan (``engine/csrc/scan.cpp``) in a scratch copy of the repository, runs the engine tests there
(``pytest -x``: the first failure is a catch) and restores the file. A C++ mutation rebuilds the
extension into a scratch kernel cache (about 40 s on a quiet machine), so your own cache is left as
it is. The unmutated tests run first: a catch only counts if they pass without the bug.

    nice python scripts/mutation_check.py              # all; prints a Markdown table
    nice python scripts/mutation_check.py --python     # only the Python-side mutations
    python scripts/mutation_check.py --list            # names only
    python scripts/mutation_check.py --only tbptt_off_by_one_cpp

Slow (tens of minutes: each missed bug runs the whole selection), so it is not part of CI; the last
result is in docs/testing.md. Exit status 0 only if every mutation was caught.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_TESTS = ("tests/engine/test_backward_paths.py", "tests/engine/test_engine.py")
OPS = "src/rnnkit/ops"
ENG = "src/rnnkit/engine"
CPP = "src/rnnkit/engine/csrc/recurrence.cpp"
SCAN = "src/rnnkit/engine/csrc/scan.cpp"
SCAN_TESTS = ("tests/engine/test_min_scan.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the bug, in words
    path: str
    old: str
    new: str
    tests: tuple[str, ...] = ENGINE_TESTS

    @property
    def cpp(self) -> bool:
        return self.path.endswith(".cpp")


MUTATIONS = [
    # -- ops/: the Python loop's step backwards and weight gradients
    Mutation("lstm_forget_factor", "LSTM forget-gate gradient drops its c_{t-1} factor", f"{OPS}/lstm.py",
             "df = dc * c_prev * dsig(forgetgate)", "df = dc * dsig(forgetgate)"),
    Mutation("lstm_peephole_out_path", "LSTM output-gate peephole's path into dc dropped", f"{OPS}/lstm.py",
             "        dc = dc + do * w.peephole[2]\n", "        dc = dc\n"),
    Mutation("lstm_peephole_forget_path", "LSTM forget-gate peephole's path into dc_{t-1} dropped", f"{OPS}/lstm.py",
             "dc_prev = dc_prev + di * w.peephole[0] + df * w.peephole[1]", "dc_prev = dc_prev + di * w.peephole[0]"),
    Mutation("lstm_peephole_weight_grad", "LSTM output peephole's gradient uses c_{t-1} instead of c_t",
             f"{OPS}/lstm.py", "(do * c_t).sum((0, 1))", "(do * c_prev).sum((0, 1))"),
    Mutation("lstm_cell_ln_skipped", "LSTM cell layer norm's backward skipped", f"{OPS}/lstm.py",
             "dc = dc + normalize_backward(dc_hat, c_hat, rstd_c)", "dc = dc + dc_hat"),
    Mutation("lstm_ln_gamma_grad", "LSTM ln_gamma gradient taken after the normalisation's backward",
             f"{OPS}/lstm.py", 'grads["ln_gamma"] = (da_tilde * a_hat', 'grads["ln_gamma"] = (da * a_hat'),
    Mutation("layernorm_mean_term", "layer-norm backward drops the mean term", f"{OPS}/layernorm.py",
             "rstd * (d_ahat - mean_g - a_hat * mean_ga)", "rstd * (d_ahat - a_hat * mean_ga)"),
    Mutation("gru_reset_sign", "GRU reset-gate gradient with a flipped sign (reset-after)", f"{OPS}/gru.py",
             "dr = dn * rh * dsig(resetgate)", "dr = -dn * rh * dsig(resetgate)"),
    Mutation("gru_update_sign", "GRU update-gate gradient with a flipped sign", f"{OPS}/gru.py",
             "dz = dh * (h_prev - newgate) * dsig(updategate)", "dz = dh * (newgate - h_prev) * dsig(updategate)"),
    Mutation("gru_before_reset_ignores_dropout", "GRU reset-before's r gradient reads h_{t-1}, not the dropped-out h",
             f"{OPS}/gru.py", "dr = drh * hin * dsig(resetgate)", "dr = drh * h_prev * dsig(resetgate)"),
    Mutation("gru_bias_hh_grad", "GRU reset-after b_hh gradient from d(xw) instead of d(W_hh h + b_hh)",
             f"{OPS}/gru.py", 'grads["bias_hh"] = dhw2.sum(0)', 'grads["bias_hh"] = step_grads[0].reshape(-1, G).sum(0)'),
    Mutation("sigmoid_grad", "sigmoid's derivative off by a factor", f"{OPS}/activations.py",
             "lambda y: y * (1 - y)", "lambda y: y * (1 - y) * 0.5"),
    # -- engine/recurrence.py: the Python loop's BPTT
    Mutation("tbptt_off_by_one_python", "TBPTT cut one step late (Python loop)", f"{ENG}/recurrence.py",
             "if tbptt is not None and t % tbptt == 0 and t > 0:", "if tbptt is not None and (t - 1) % tbptt == 0 and t > 1:"),
    Mutation("mask_ignored_python", "the output mask ignored in the backward (Python loop)", f"{ENG}/recurrence.py",
             "        d_out = d_out * out_mask\n", "        d_out = d_out\n"),
    Mutation("zoneout_wrong_mask_python", "zoneout: the cell state's backward uses h's keep mask (Python loop)",
             f"{ENG}/recurrence.py", "for ks, d in zip(keep_steps, d_state):",
             "for ks, d in zip([keep_steps[0]] * len(d_state), d_state):"),
    Mutation("keep_split_python", "the kept part of a state's gradient uses 1 - keep (Python loop)",
             f"{ENG}/recurrence.py", "d_prev.append(d * ks[t])", "d_prev.append(d * (1 - ks[t]))"),
    Mutation("dropout_ignored_python", "recurrent dropout ignored in the backward (Python loop)",
             f"{ENG}/recurrence.py", "d_prev[0] = _add(d_prev[0], dhin if rdm is None else dhin * rdm)",
             "d_prev[0] = _add(d_prev[0], dhin)"),
    # -- engine/compiled.py: the Python side of the compiled backward
    Mutation("dropout_ignored_histories", "recurrent dropout ignored by the gradient-histories GEMMs",
             f"{ENG}/compiled.py", "hin = (hin_all if hin_all is not None else h_hist[:T]).reshape(T * B, H)",
             "hin = h_hist[:T].reshape(T * B, H)"),
    Mutation("gru_before_histories_rh", "GRU reset-before histories: W_hn's gradient against h, not r * h",
             f"{ENG}/compiled.py", "rh = extra.reshape(T * B, H)", "rh = hin"),
    Mutation("gru_after_histories_dhw", "GRU reset-after histories: W_hh's gradient from d(xw), not d(W_hh h + b_hh)",
             f"{ENG}/compiled.py", "dw_hh = weight_grad(dhw.reshape(T * B, G), hin)", "dw_hh = weight_grad(d2, hin)"),
    Mutation("lstm_option_grads_order", "compiled LSTM: ln_gamma and ln_beta gradients swapped",
             f"{ENG}/compiled.py", 'names += ["ln_gamma", "ln_beta"]', 'names += ["ln_beta", "ln_gamma"]'),
    Mutation("tbptt_off_by_one_compiled", "TBPTT window one step longer (compiled loop)", f"{ENG}/compiled.py",
             "tbptt or 0, want_norms", "(tbptt + 1 if tbptt else 0), want_norms"),
    Mutation("mask_ignored_compiled", "the output mask not passed to the compiled backward", f"{ENG}/compiled.py",
             "_c(out_mask), rdm, lstm_w, ln_cache", "None, rdm, lstm_w, ln_cache"),
    Mutation("dropout_ignored_compiled", "recurrent dropout not passed to the compiled backward",
             f"{ENG}/compiled.py", "_c(out_mask), rdm, lstm_w, ln_cache", "_c(out_mask), None, lstm_w, ln_cache"),
    # -- the C++ loop (each rebuilds the extension)
    Mutation("lstm_forget_factor_cpp", "C++ LSTM forget-gate gradient drops its c_{t-1} factor", CPP,
             "dx[H + j] = (dcv * cp[j]) * (fv * (T(1) - fv));", "dx[H + j] = dcv * (fv * (T(1) - fv));"),
    Mutation("gru_reset_sign_cpp", "C++ GRU reset-gate gradient with a flipped sign", CPP,
             "const T dr = (dnn * hn_cache[j]) * (rv * (T(1) - rv));",
             "const T dr = -(dnn * hn_cache[j]) * (rv * (T(1) - rv));"),
    Mutation("tbptt_off_by_one_cpp", "C++ TBPTT cut one step late", CPP,
             "const bool cut = tbptt > 0 && t % tbptt == 0 && t > 0;",
             "const bool cut = tbptt > 0 && (t - 1) % tbptt == 0 && t > 1;"),
    Mutation("zoneout_wrong_mask_cpp", "C++ zoneout: the cell state's backward uses h's keep mask", CPP,
             "split_by_keep(dcb, dcnb, KC ? KC + (t * B + b) * kcw : nullptr, kcw, H);",
             "split_by_keep(dcb, dcnb, KH ? KH + (t * B + b) * khw : nullptr, khw, H);"),
    Mutation("dropout_ignored_cpp", "C++ recurrent dropout ignored in the backward", CPP,
             "for (int64_t i = i0; i < i1; ++i) DH[i] += di[i] * RDM[i];",
             "for (int64_t i = i0; i < i1; ++i) DH[i] += di[i];"),
    Mutation("mask_ignored_cpp", "C++ output mask ignored in the backward", CPP,
             "add_scaled(DH + b * H, dot, do_j, OM ? OM[t * B + b] : T(1), H);",
             "add_scaled(DH + b * H, dot, do_j, T(1), H);"),
    Mutation("peephole_grad_cpp", "C++ output peephole's gradient uses c_{t-1} instead of c_t", CPP,
             "o[2 * H + j] += da[3 * H + j] * (gb[H + j] * cp[j] + gb[j] * gb[2 * H + j]);",
             "o[2 * H + j] += da[3 * H + j] * cp[j];"),
    Mutation("dropped_thread_dw_cpp", "C++: the second thread's weight gradients dropped", CPP,
             "for (size_t k = 1; k < dw.size(); ++k) dw[0].add_(dw[k]);",
             "for (size_t k = 2; k < dw.size(); ++k) dw[0].add_(dw[k]);"),
    # -- the minGRU/minLSTM scan (csrc/scan.cpp; each rebuilds the extension)
    Mutation("min_exp_polynomial_cpp", "scan: a wrong coefficient in the double exp's polynomial", SCAN,
             "p = p * r + 1.0 / 6.0;", "p = p * r + 1.0 / 7.0;", SCAN_TESTS),
    Mutation("min_mask_ignored_cpp", "scan forward: padded steps update the state", SCAN,
             "if (mp == nullptr || mp[b * T + t] != S(0)) {\n          forward_step",
             "if (true) {\n          forward_step", SCAN_TESTS),
    Mutation("min_gate_grad_sign_cpp", "scan backward: the gate's gradient with a flipped sign", SCAN,
             "const S du = st.s * st.a * d * (st.g - hprev[jj]);", "const S du = st.s * st.a * d * (hprev[jj] - st.g);",
             SCAN_TESTS),
    Mutation("min_carry_cpp", "scan backward: delta carried to h_{t-1} by s instead of a", SCAN,
             "delta[jj] = st.a * d;  // carried", "delta[jj] = st.s * d;  // carried", SCAN_TESTS),
    Mutation("min_lstm_forget_sign_cpp", "scan backward: minLSTM's forget-gate gradient with a flipped sign", SCAN,
             "dkf = -du * st.sf_neg;", "dkf = du * st.sf_neg;", SCAN_TESTS),
    Mutation("min_bias_grad_cpp", "scan backward: minGRU's gate-bias gradient summed from the candidate's", SCAN,
             "db[0][jj] += du;", "db[0][jj] += dkh;", SCAN_TESTS),
    Mutation("min_tbptt_off_by_one_cpp", "scan backward: TBPTT cut one step late", SCAN,
             "if (tbptt > 0 && p > 0 && p % tbptt == 0)", "if (tbptt > 0 && p > 1 && (p - 1) % tbptt == 0)",
             SCAN_TESTS),
    Mutation("min_norms_cpp", "scan backward: the probe's norms never written", SCAN,
             "if (np != nullptr) {\n          double sq", "if (np != nullptr && false) {\n          double sq",
             SCAN_TESTS),
    Mutation("min_sig2_pairing_cpp", "scan: the shared division's two sigmoids swapped", SCAN,
             "const S bx = r * py, by = r * px;", "const S bx = r * px, by = r * py;", SCAN_TESTS),
    Mutation("min_backward_mask_ignored_cpp", "scan backward: padded steps get a gradient", SCAN,
             "if (mp != nullptr && mp[b * T + t] == S(0)) {  // a and b", "if (false) {  // a and b", SCAN_TESTS),
    Mutation("min_exp_polynomial_float_cpp", "scan: a wrong coefficient in the float exp's polynomial", SCAN,
             "p = p * r + 1.0f / 6.0f;", "p = p * r + 1.0f / 7.0f;", SCAN_TESTS),
]


def _copy_repo(dest: Path) -> None:
    """The tracked and untracked (not ignored) files, as `git ls-files` lists them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _pytest(repo: Path, tests: tuple[str, ...], kernels_dir: str | None, timeout: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "RNNKIT_REQUIRE_KERNELS": "1"}
    env.pop("RNNKIT_KERNELS", None)
    if kernels_dir:
        env["RNNKIT_KERNELS_DIR"] = kernels_dir
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", *tests]
    try:
        res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return res.returncode, res.stdout + res.stderr


def _first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    return m.group(1).split("::", 1)[-1] if m else "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="mutation names to run")
    ap.add_argument("--python", action="store_true", help="only the Python-side mutations")
    ap.add_argument("--cpp", action="store_true", help="only the C++ mutations")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per pytest run")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if (not args.only or m.name in args.only) and not (args.python and m.cpp)
              and not (args.cpp and not m.cpp)]
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.path}: {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="rnnkit-mutants-") as tmp:
        repo = Path(tmp) / "repo"
        _copy_repo(repo)
        for m in chosen:  # every snippet must be there exactly once, before anything runs
            n = (repo / m.path).read_text().count(m.old)
            if n != 1:
                print(f"{m.name}: its snippet occurs {n} times in {m.path}; update the mutation", file=sys.stderr)
                return 2
        selections = sorted({m.tests for m in chosen})
        for tests in selections:
            code, out = _pytest(repo, tests, None, args.timeout)
            if code != 0:
                print(f"The unmutated tests fail ({' '.join(tests)}), so no catch would mean anything:\n{out[-3000:]}",
                      file=sys.stderr)
                return 2
        rows, missed = [], []
        for i, m in enumerate(chosen, 1):
            path = repo / m.path
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            kernels_dir = tempfile.mkdtemp(prefix="kernels-", dir=tmp) if m.cpp else None
            start = time.monotonic()
            try:
                code, out = _pytest(repo, m.tests, kernels_dir, args.timeout)
            finally:
                path.write_text(original)
                if kernels_dir:
                    shutil.rmtree(kernels_dir, ignore_errors=True)
            # pytest exits 1 when a test failed; 0 is a miss; anything else (an error collecting, a
            # timeout) is no verdict and counts as a miss too.
            caught = code == 1
            by = _first_failure(out) if caught else ("passed" if code == 0 else f"no verdict (exit {code})")
            if not caught:
                missed.append(m.name)
                print(out[-2000:], file=sys.stderr)
            rows.append(f"| {i} | `{m.name}` | {m.what} | `{m.path.replace('src/rnnkit/', '')}` | "
                        f"{'caught' if caught else '**MISSED**'} | `{by}` |")
            print(f"[{i}/{len(chosen)}] {m.name}: {'caught by ' + by if caught else 'MISSED: ' + by} "
                  f"({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    print("| # | mutation | the bug | file | result | first failing test |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(chosen) - len(missed)} of {len(chosen)} caught" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
