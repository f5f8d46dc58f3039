"""Tiny local models and data for tests: a WordPiece tokenizer trained here, a 2-layer BERT."""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "sports": "match team goal score player coach league season win referee stadium ball",
    "cooking": "recipe oven flour butter sugar bake dish sauce pan salt onion garlic",
    "space": "orbit rocket planet star galaxy telescope launch moon astronaut comet solar",
}


def make_texts(per_label: int = 30, seed: int = 0, words: int = 12) -> list[dict]:
    rng = random.Random(seed)
    filler = "the a of and to in is it that with on for".split()
    rows = []
    for label, vocab in TOPICS.items():
        topic = vocab.split()
        for _ in range(per_label):
            text = " ".join(rng.choice(topic) if rng.random() < 0.6 else rng.choice(filler) for _ in range(words))
            rows.append({"text": text, "label": label})
    return rows


def make_model(folder: Path, texts: list[str], layers: int = 2, hidden: int = 32) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    fast.save_pretrained(str(folder))
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=512)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
