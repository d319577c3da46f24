"""report.html: one static page with every picture embedded; a headless Chromium loads all its images."""

import base64
import io
import re
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
from PIL import Image

from rnnkit import checkpoint
from rnnkit.data.text import CharTokenizer
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig
from rnnkit.tasks.report import sample_text, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOG = "epoch,step,train_loss,valid_loss\n1,10,2.1,2.0\n2,20,1.7,1.8\n3,30,1.5,1.7\n"


@pytest.fixture
def run(tmp_path):
    tokenizer = CharTokenizer.fit("abcdefgh ")
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, embedding_size=6, hidden_size=5)
    run_config = {"task": "lm", "model": asdict(config), "tokenizer": tokenizer.to_config()}
    checkpoint.save_model(tmp_path, LanguageModel(config), run_config)
    checkpoint.write_json(tmp_path / "metrics.json", {"test": {"bits_per_token": 2.5, "perplexity": 5.66},
                                                      "history": [{"step": 1}] * 20})  # fmt: skip
    (tmp_path / "log.csv").write_text(LOG)
    return tmp_path


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_embeds_curves_and_pictures_and_lists_config_and_metrics(run):
    path = write_report(run, text="bad cafe")
    page = path.read_text(encoding="utf-8")
    images = embedded_images(page)
    # loss curve, unfolded graph, heatmaps of both layers, gradient flow
    assert len(images) == 5
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert "test.bits_per_token" in page and "2.5" in page and "[20 entries]" in page  # metrics, history summarised
    assert "model.hidden_size" in page and "bad cafe" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_report_without_an_input_reuses_the_last_sample(run):
    write_report(run, text="bad cafe")
    (run / "inspect" / "unfolded.png").unlink()
    page = write_report(run).read_text(encoding="utf-8")
    assert (run / "inspect" / "unfolded.png").is_file() and "bad cafe" in page


def test_report_of_a_run_without_a_sample_says_how_to_add_one(run):
    page = write_report(run).read_text(encoding="utf-8")
    assert len(embedded_images(page)) == 1 and "rnnkit report DIR --text" in page


def test_sample_text_cuts_at_a_space():
    assert sample_text("to be or not to be", 12) == "to be or not"
    assert sample_text("short") == "short"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium; make system-deps)")
def test_chromium_renders_the_report_and_every_image_loads(run, tmp_path):
    page = write_report(run, text="bad cafe").read_text(encoding="utf-8")
    # a probe, only in the copy the browser reads: after load, write each image's natural width into the DOM
    probe = ("<script>window.addEventListener('load', () => { document.body.setAttribute('data-widths', "
             "Array.from(document.images).map(i => i.naturalWidth).join(',')); });</script>")  # fmt: skip
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
               "--dump-dom", Path(copy).as_uri()]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-widths="([^"]*)"', result.stdout)
    assert match, result.stdout[:2000]
    widths = [int(w) for w in match.group(1).split(",")]
    assert len(widths) == 5 and all(w > 100 for w in widths)
    assert "Inside the network" in result.stdout
