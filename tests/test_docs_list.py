"""README.md lists every document under docs/ (so a newcomer finds each)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_links_every_document():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    docs = sorted(p.name for p in (ROOT / "docs").iterdir()
                  if p.suffix in (".md", ".json") and p.is_file())
    missing = [d for d in docs if f"](docs/{d})" not in readme]
    assert not missing, f"README.md's docs list lacks {missing}: add a line for each"
