"""The README's two commands are the ones CI and users run; keep them true."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.startswith("```bash"):
            inside, cur = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append("\n".join(cur).strip())
        elif inside:
            cur.append(line)
    return blocks


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_command = blocks[1]
    assert "pytest" in test_command
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_ci_requires_the_compiled_loop_before_testing():
    # A C++ build failure must fail CI, not quietly leave the Python loop (engine/kernels.py).
    lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_line = lines.index(_bash_blocks((ROOT / "README.md").read_text())[1])
    assert "export RNNKIT_REQUIRE_KERNELS=1" in lines[:test_line]


def test_install_commands_use_the_cpu_constraints():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    for command in blocks[:2]:
        assert "-c constraints.txt" in command
    assert "torch==" in (ROOT / "constraints.txt").read_text()
