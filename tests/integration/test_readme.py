"""The README's promises that a test can check: the two fresh-machine commands come first, and
CI runs exactly the second one."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO


def _bash_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", (REPO / "README.md").read_text(), flags=re.S | re.M)


def test_first_two_blocks_are_main_job_then_tests():
    blocks = _bash_blocks()
    assert len(blocks) >= 2
    main, tests = blocks[0].strip(), blocks[1].strip()
    assert main.endswith("dvc repro") and "pip install -c constraints.txt -e ." in main
    assert "'.[test]'" in tests and tests.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    # .ci/run extracts the block with awk; run that extraction and compare.
    script = (REPO / ".ci" / "run").read_text()
    awk = re.search(r"awk '([^']*)' README.md", script).group(1)
    extracted = subprocess.run(["awk", awk, "README.md"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert extracted.strip() == _bash_blocks()[1].strip()


def test_documented_config_groups_exist():
    # The config groups are documented in the manual (docs/configuration.md), not the README.
    text = (REPO / "docs" / "configuration.md").read_text()
    for opt in ("synthesis=caption_only", "retrieval=external", "debug=tiny"):
        group, name = opt.split("=")
        assert (REPO / "conf" / group / f"{name}.yaml").exists(), opt
    assert "conf/debug/tiny" in text


def test_the_first_screen_reaches_the_commands_and_the_results():
    """A newcomer reaches the two commands and the results table in the README's first screen,
    and the README points to every page of the manual."""
    lines = (REPO / "README.md").read_text().splitlines()
    heading = {line: i for i, line in enumerate(lines) if line.startswith("## ")}
    assert heading["## Two commands on a fresh machine"] < 40
    assert heading["## Two commands on a fresh machine"] < heading["## Results"] < 70
    text = "\n".join(lines)
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name}" in text, f"the README's map of the manual misses docs/{page.name}"
