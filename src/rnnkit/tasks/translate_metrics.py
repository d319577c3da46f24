"""Translation metrics from sacrebleu, on detokenised text: corpus BLEU and chrF with their signatures.

Never a hand-written BLEU: sacrebleu applies its own tokeniser (``13a``) to hypotheses and references
alike, so scores compare across papers and tools; the signature (e.g.
``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``) says exactly how it was computed.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF

from rnnkit.errors import RnnkitError


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU and chrF of ``hypotheses`` against one reference each, with sacrebleu's signatures."""
    if len(hypotheses) != len(references):
        raise RnnkitError(f"{len(hypotheses)} translations but {len(references)} references; give one each.")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_detail": str(bleu_score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "n": len(hypotheses),
    }
