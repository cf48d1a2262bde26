#!/usr/bin/env python3
"""Generate the tokenizer oracle fixtures under tests/fixtures/tokenizer/.

Why this exists: the Ahma-*-Instruct repositories ship only `tokenizer.json`, so the
GGUF converters wrote their vocabularies with constant -1000 scores. We cannot ship
Ahma's real 64k vocabulary, so we train a small SentencePiece model with *the same
trainer options Ahma used* on real Finnish text, export it the three ways the real
model exists in the wild, and record what the reference tokenizers produce:

  sp.model                 SentencePiece BPE model (model_type=bpe, split_digits,
                           byte_fallback, nfkc, user symbols [INST] [/INST] <<SYS>> <</SYS>>)
  vocab.tsv                id <TAB> piece <TAB> score <TAB> type  (plain dump, for other helpers)
  tokenizer.json           transformers' LlamaConverter output (as the Ahma repos have it)
  tokenizer_config.json    with a Llama-2 chat template
  vocab-real-scores.gguf   tokenizer-only GGUF, scores from the SentencePiece model
  vocab-const-scores.gguf  tokenizer-only GGUF, every score -1000 (what LlamaHfVocab writes)
  corpus_sample.txt        the committed test lines (GPL'd Finnish documentation, see SOURCES.md)
  expected_ids.jsonl       per line: text, sentencepiece ids, AutoTokenizer ids, decode
  expected_chat.json       apply_chat_template renderings

Text sources (Debian bookworm packages, fetched with `apt-get download`, unpacked with
`dpkg -x`; nothing installed):
  manpages-fi 4.18.1-1      GPL-3+   (translated manual pages)       training + test lines
  aptitude-doc-fi 0.8.13-5  GPL-2+   (aptitude user's manual)         training + test lines
  gimp-help-fi 2.10.34-2    GFDL-1.2 (GIMP user manual)               training only, never committed

Python environment (no torch):
  python3 -m venv VENV && VENV/bin/pip install -r tests/gen/requirements-tokenizer.txt

Usage:
  VENV/bin/python tests/gen/gen_tokenizer_fixtures.py --work SCRATCH_DIR [--stage all|train|export|oracle]
"""

import argparse
import gzip
import html.parser
import json
import os
import random
import re
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "tokenizer"))

PACKAGES = {
    "manpages-fi": ("4.18.1-1", "GPL-3+", True),
    "aptitude-doc-fi": ("0.8.13-5", "GPL-2+", True),
    "gimp-help-fi": ("2.10.34-2", "GFDL-1.2", False),
}

USER_SYMBOLS = ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]
# Ahma's train_sentencepiece.py passes the Finnish alphabet as required_chars.
REQUIRED_CHARS = "abcdefghijklmnopqrstuvwxyzåäöABCDEFGHIJKLMNOPQRSTUVWXYZÅÄÖ"
VOCAB_SIZE = 4000
N_TEST_LINES = 2200
SEED = 20241127


# --------------------------------------------------------------------------- corpus


def fetch_packages(work):
    debs = os.path.join(work, "debs")
    root = os.path.join(work, "root")
    os.makedirs(debs, exist_ok=True)
    for name, (version, _lic, _commit) in PACKAGES.items():
        deb = os.path.join(debs, f"{name}_{version}_all.deb")
        if not os.path.exists(deb):
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True)
        stamp = os.path.join(root, f".{name}")
        if not os.path.exists(stamp):
            os.makedirs(root, exist_ok=True)
            subprocess.run(["dpkg", "-x", deb, root], check=True)
            open(stamp, "w").close()
    return root


ROFF_ESCAPES = [
    (r"\\f\[[^\]]*\]", ""),
    (r"\\f[A-Z0-9PR]", ""),
    (r"\\[,/&:]", ""),
    (r"\\\(co", "©"),
    (r"\\\(em", "—"),
    (r"\\\(en", "–"),
    (r"\\\(aq", "'"),
    (r"\\\(dq", '"'),
    (r"\\\(bu", "•"),
    (r"\\\([a-z][a-z]", ""),
    (r"\\\*\(..", ""),
    (r"\\\*.", ""),
    (r"\\s[-+]?\d", ""),
    (r"\\-", "-"),
    (r"\\e", "\\\\"),
    (r"\\ ", " "),
    (r"\\\|", ""),
    (r"\\\^", ""),
    (r"\\c", ""),
]


def roff_to_lines(text):
    """Very small roff stripper: keeps running text and section titles."""
    out = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"")) or line.startswith('.\\"'):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            macro = parts[0]
            if macro in (".SH", ".SS", ".B", ".I", ".BR", ".IR", ".RB", ".RI", ".IP", ".TP", ".BI", ".IB") and len(parts) > 1:
                line = parts[1].replace('"', "")
            else:
                continue
        for pat, rep in ROFF_ESCAPES:
            line = re.sub(pat, rep, line)
        line = line.strip()
        if line:
            out.append(line)
    return out


class _HtmlText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd", "pre", "title", "td", "th"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_lines(text):
    p = _HtmlText()
    p.feed(text)
    out = []
    for line in "".join(p.parts).split("\n"):
        line = re.sub(r"[ \t\r\n]+", " ", line).strip()
        if line:
            out.append(line)
    return out


def collect_lines(root):
    """Returns {package: [lines]} in a deterministic order."""
    res = {}
    man = os.path.join(root, "usr/share/man/fi")
    lines = []
    for d, _dirs, files in sorted(os.walk(man)):
        for f in sorted(files):
            if f.endswith(".gz"):
                with gzip.open(os.path.join(d, f), "rt", encoding="utf-8", errors="replace") as fh:
                    lines += roff_to_lines(fh.read())
    res["manpages-fi"] = lines
    for name, sub in (("aptitude-doc-fi", "usr/share/doc/aptitude/html/fi"), ("gimp-help-fi", "usr/share/gimp/2.0/help/fi")):
        lines = []
        for d, _dirs, files in sorted(os.walk(os.path.join(root, sub))):
            for f in sorted(files):
                if f.endswith(".html"):
                    with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
                        lines += html_to_lines(fh.read())
        res[name] = lines
    return res


EN_WORDS = {"the", "and", "of", "to", "is", "for", "in", "with", "this", "that", "are", "be", "by", "or", "if", "it", "from", "not", "as", "an"}
FI_WORDS = {"ja", "on", "tai", "ei", "se", "kun", "jos", "voi", "tämä", "että", "ovat", "sen", "kanssa", "myös", "jotka", "joka", "mukaan", "tiedosto", "valitsin", "kuva"}


def is_english(line):
    """The Finnish manuals keep some untranslated English paragraphs; Ahma saw Finnish only."""
    words = [w.lower() for w in re.findall(r"[A-Za-zÅÄÖåäö]+", line)]
    en = sum(w in EN_WORDS for w in words)
    fi = sum(w in FI_WORDS for w in words) + 2 * len(re.findall(r"[äöÄÖ]", line))
    return en > fi


def looks_finnish(line):
    """Prefer lines that are Finnish prose rather than option lists or English leftovers."""
    if len(line) < 12 or len(line) > 400 or is_english(line):
        return False
    words = re.findall(r"[A-Za-zÅÄÖåäö]+", line)
    if len(words) < 3:
        return False
    return bool(re.search(r"[äöÄÖ]", line)) or any(w.endswith(("ssa", "ssä", "lla", "llä", "sta", "stä", "en")) for w in words)


# --------------------------------------------------------------------------- training


def train(work):
    import sentencepiece as spm

    root = fetch_packages(work)
    by_pkg = collect_lines(root)
    train_path = os.path.join(work, "train.txt")
    with open(train_path, "w", encoding="utf-8") as fh:
        for name in PACKAGES:
            for line in by_pkg[name]:
                if not is_english(line):
                    fh.write(line + "\n")
    n_train = sum(len(v) for v in by_pkg.values())
    print(f"training lines: {n_train} " + ", ".join(f"{k}={len(v)}" for k, v in by_pkg.items()))

    os.makedirs(OUT, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=train_path,
        model_prefix=os.path.join(work, "sp"),
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        split_digits=True,
        byte_fallback=True,
        normalization_rule_name="nfkc",
        user_defined_symbols=USER_SYMBOLS,
        required_chars=REQUIRED_CHARS,
        num_threads=2,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    # The model records the trainer's input and output paths; drop them so the committed
    # file does not carry paths of the machine that generated it.
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(os.path.join(work, "sp.model"), "rb") as src:
        proto.ParseFromString(src.read())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.model_prefix = ""
    with open(os.path.join(OUT, "sp.model"), "wb") as dst:
        dst.write(proto.SerializeToString())

    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "sp.model"))
    with open(os.path.join(OUT, "vocab.tsv"), "w", encoding="utf-8") as fh:
        fh.write("# id\tpiece\tscore\ttype (1 normal, 2 unknown, 3 control, 4 user_defined, 6 byte)\n")
        for i in range(sp.get_piece_size()):
            if sp.is_unknown(i):
                ty = 2
            elif sp.is_control(i):
                ty = 3
            elif sp.is_byte(i):
                ty = 6
            elif sp.is_unused(i):
                ty = 5
            else:
                ty = 4 if sp.id_to_piece(i) in USER_SYMBOLS else 1
            fh.write(f"{i}\t{sp.id_to_piece(i)}\t{sp.get_score(i)}\t{ty}\n")

    # Test lines: only from the GPL'd packages, deduplicated, shuffled deterministically.
    rng = random.Random(SEED)
    pool = []
    seen = set()
    for name, (_v, _lic, commit) in PACKAGES.items():
        if not commit:
            continue
        for line in by_pkg[name]:
            if looks_finnish(line) and line not in seen:
                seen.add(line)
                pool.append(line)
    rng.shuffle(pool)
    sample = pool[:N_TEST_LINES]
    with open(os.path.join(OUT, "corpus_sample.txt"), "w", encoding="utf-8") as fh:
        for line in sample:
            fh.write(line + "\n")
    print(f"test lines: {len(sample)} of {len(pool)} candidates")


# --------------------------------------------------------------------------- exports

# The standard Llama-2 chat template (meta-llama/Llama-2-7b-chat-hf): the Ahma repos say
# their format is "basically the same format what Meta used in their Llama2 models".
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# A second, multi-line template in the style of newer HF templates: it exercises
# trim_blocks/lstrip_blocks, add_generation_prompt, namespace() and Python string methods.
MULTILINE_TEMPLATE = """{%- set ns = namespace(turns=0) -%}
{% for message in messages %}
    {% if message['role'] == 'system' %}
<<SYS>>{{ message['content'] | trim }}<</SYS>>
    {% else %}
        {% set ns.turns = ns.turns + 1 %}
        {% if message['role'] == 'user' %}
{{ bos_token }}[INST] {{ message['content'].lstrip() }} [/INST]
        {% else %}
 {{ message['content'] }} {{ eos_token }}
        {% endif %}
    {% endif %}
    {% if loop.last and add_generation_prompt %}
(vuoro {{ ns.turns }})
    {% endif %}
{% endfor %}
"""

# transformers >= 4.45 also enables jinja2's loopcontrols ({% continue %}, {% break %});
# 4.44.2 does not, so this one is rendered by a jinja2 environment configured the way
# newer transformers configures it (trim_blocks, lstrip_blocks, loopcontrols, its
# tojson and raise_exception).
LOOPCONTROLS_TEMPLATE = """{% for message in messages %}
    {% if message['role'] == 'system' %}{% continue %}{% endif %}
    {% if loop.index0 > 2 %}{% break %}{% endif %}
[{{ message['role'] | upper }}] {{ message | tojson }} {{ message['content'] | tojson(indent=2) }}
{% endfor %}
{% if add_generation_prompt %}{{ bos_token }}{% endif %}
"""


def jinja_env_like_new_transformers():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def export(work):
    import gguf
    import sentencepiece as spm
    from gguf.vocab import LlamaHfVocab
    from transformers import LlamaTokenizer, LlamaTokenizerFast
    from transformers.convert_slow_tokenizer import LlamaConverter

    sp_path = os.path.join(OUT, "sp.model")
    # tokenizer.json exactly as Llama-2 tokenizers were made: slow LlamaTokenizer
    # (legacy=True, add_prefix_space) converted by transformers' LlamaConverter. The fast
    # wrapper must not get add_prefix_space itself: in transformers 4.44 that forces a
    # re-conversion from the slow tokenizer on every load (and tokenizer.model is absent,
    # as in the Ahma-Instruct repos); the prefix is already in tokenizer.json's normalizer.
    slow = LlamaTokenizer(vocab_file=sp_path, legacy=True, add_prefix_space=True)
    fast_backend = LlamaConverter(slow).converted()
    fast = LlamaTokenizerFast(
        tokenizer_object=fast_backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        add_bos_token=True,
        add_eos_token=False,
        legacy=True,
    )
    fast.chat_template = LLAMA2_TEMPLATE
    hf_dir = os.path.join(work, "hf")
    fast.save_pretrained(hf_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(hf_dir, name), "rb") as src, open(os.path.join(OUT, name), "wb") as dst:
            dst.write(src.read())

    sp = spm.SentencePieceProcessor(model_file=sp_path)
    n = sp.get_piece_size()

    def write_gguf(path, tokens, scores, types):
        w = gguf.GGUFWriter(path, "llama")
        w.add_name("ahma-chat tokenizer oracle")
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_chat_template(LLAMA2_TEMPLATE)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    # Real scores: what convert_hf_to_gguf's _set_vocab_sentencepiece writes from tokenizer.model.
    tokens, scores, types = [], [], []
    for i in range(n):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif tokens[-1] in USER_SYMBOLS:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    write_gguf(os.path.join(OUT, "vocab-real-scores.gguf"), tokens, scores, types)

    # Constant scores: the path convert_hf_to_gguf takes for the Ahma-Instruct repos
    # (no tokenizer.model): gguf-py's LlamaHfVocab over the tokenizer.json directory.
    hfv = LlamaHfVocab(__import__("pathlib").Path(hf_dir))
    tokens, scores, types = [], [], []
    for text, score, ty in hfv.all_tokens():
        tokens.append(text.decode("utf-8"))
        scores.append(score)
        types.append(ty)
    assert len(set(scores)) == 1, "LlamaHfVocab is expected to write constant scores"
    write_gguf(os.path.join(OUT, "vocab-const-scores.gguf"), tokens, scores, types)
    print("const-score types of ids 0..7:", [int(t) for t in types[:8]])


# --------------------------------------------------------------------------- oracle

HARD_CASES = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "Hei",
    " Hei",
    "   Hei maailma",
    "Hei   maailma",
    "Hei maailma   ",
    "Hei\tmaailma\t\tkaksi",
    "rivi yksi\nrivi kaksi\n\nrivi kolme\n",
    "Windows-rivinvaihto\r\nseuraava",
    "0",
    "1234567890",
    "Hinta on 1 299,95 € ja alennus 15 %.",
    "Vuonna 2024 oli 366 päivää; π ≈ 3.14159.",
    "puh. +358 40 123 4567",
    "😀",
    "Kiitos 🙏🏽 ja 👩‍👩‍👧 sekä 🇫🇮!",
    "日本語のテキスト",
    "Ελληνικά και русский язык",
    "עברית ו-العربية",
    "ᚠᚢᚦᚨᚱᚲ 𐌰𐌱𐌲 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "Ääkköset: ÅÄÖ åäö",
    "ﬁnaali ① Ａ ｶ ½ ²",
    "e\u0301 ja o\u0308",
    "tyhjä\u00a0väli ja nolla\u200bleveys",
    "\u0001ohjausmerkki\u007f",
    "[INST]",
    "[INST] Mikä on Suomen pääkaupunki? [/INST]",
    "<<SYS>>\nOlet avustaja.\n<</SYS>>\n\nHei",
    "a[INST]b",
    "teksti [/INST]loppu",
    "<s>Hei</s>",
    "<s> [INST] Hei [/INST] Moi </s>",
    "<0x41> ▁ <unk>",
    "▁▁alaviiva",
    "ääääääääääääääääääääääääääääääää",
    "Lauseessa on sanoja.Ja piste keskellä.Kolme",
    "https://example.org/polku?kysely=1&toinen=kaksi",
    "def f(x):\n    return x * 2\n",
]


def oracle(work):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "sp.model"))
    hf_dir = os.path.join(work, "hf")
    tok = AutoTokenizer.from_pretrained(hf_dir)
    assert tok.is_fast, "AutoTokenizer must load tokenizer.json"

    with open(os.path.join(OUT, "corpus_sample.txt"), encoding="utf-8") as fh:
        lines = [l.rstrip("\n") for l in fh]
    cases = [("corpus", t) for t in lines] + [("hard", t) for t in HARD_CASES]

    n_diff = 0
    diffs = []
    with open(os.path.join(OUT, "expected_ids.jsonl"), "w", encoding="utf-8") as fh:
        for kind, text in cases:
            sp_ids = sp.encode(text)
            hf_ids = tok(text)["input_ids"]
            rec = {
                "kind": kind,
                "text": text,
                "hf": hf_ids,
                "sp": sp_ids,
                "hf_decode": tok.decode(hf_ids),
                "hf_decode_skip": tok.decode(hf_ids, skip_special_tokens=True),
                "sp_decode": sp.decode(sp_ids),
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if [1] + sp_ids != hf_ids:
                n_diff += 1
                diffs.append({"kind": kind, "text": text, "sp": sp_ids, "hf": hf_ids})
    print(f"oracle: {len(cases)} cases, sentencepiece != AutoTokenizer on {n_diff}")
    with open(os.path.join(OUT, "sp_vs_hf_differences.json"), "w", encoding="utf-8") as fh:
        json.dump({"cases": len(cases), "differences": diffs}, fh, ensure_ascii=False, indent=1)

    sysmsg = {"role": "system", "content": "Olet tekoälyavustaja. Vastaat aina mahdollisimman avuliaasti."}
    u1 = {"role": "user", "content": "Kerro kolme hyötyä, joita pienet kielimallit tuovat?"}
    a1 = {"role": "assistant", "content": "  1) Nopeus 2) Yksityisyys 3) Hinta  "}
    u2 = {"role": "user", "content": " Entä haitat?\nLuettele ne. "}
    a2 = {"role": "assistant", "content": "Heikompi tarkkuus."}
    conversations = {
        "single": [u1],
        "single_system": [sysmsg, u1],
        "multi": [u1, a1, u2],
        "multi_system": [sysmsg, u1, a1, u2],
        "multi_system_closed": [sysmsg, u1, a1, u2, a2],
        "bad_alternation": [u1, u2],
        "bad_system_late": [u1, sysmsg],
    }
    renders = []
    for tname, template in (("llama2", LLAMA2_TEMPLATE), ("multiline", MULTILINE_TEMPLATE)):
        for cname, msgs in conversations.items():
            for agp in (False, True):
                rec = {"template": tname, "conversation": cname, "add_generation_prompt": agp}
                try:
                    text = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=agp)
                    ids = tok.apply_chat_template(msgs, chat_template=template, tokenize=True, add_generation_prompt=agp)
                    rec["text"] = text
                    rec["ids"] = ids
                except Exception as e:  # raise_exception() surfaces as TemplateError
                    rec["error"] = str(e)
                renders.append(rec)
    env = jinja_env_like_new_transformers()
    for cname, msgs in conversations.items():
        for agp in (False, True):
            rec = {"template": "loopcontrols", "conversation": cname, "add_generation_prompt": agp}
            text = env.from_string(LOOPCONTROLS_TEMPLATE).render(
                messages=msgs, tools=None, documents=None, add_generation_prompt=agp, **tok.special_tokens_map
            )
            rec["text"] = text
            rec["ids"] = tok(text, add_special_tokens=False)["input_ids"]
            renders.append(rec)
    with open(os.path.join(OUT, "expected_chat.json"), "w", encoding="utf-8") as fh:
        json.dump(
            {
                "templates": {"llama2": LLAMA2_TEMPLATE, "multiline": MULTILINE_TEMPLATE, "loopcontrols": LOOPCONTROLS_TEMPLATE},
                "renderers": {
                    "llama2": "transformers 4.44.2 apply_chat_template",
                    "multiline": "transformers 4.44.2 apply_chat_template",
                    "loopcontrols": "jinja2 configured as transformers>=4.45 (loopcontrols)",
                },
                "bos_token": tok.bos_token,
                "eos_token": tok.eos_token,
                "conversations": conversations,
                "renders": renders,
            },
            fh,
            ensure_ascii=False,
            indent=1,
        )
    print(f"chat renders: {len(renders)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="scratch directory (downloads, training corpus)")
    ap.add_argument("--stage", default="all", choices=["all", "train", "export", "oracle"])
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.stage == "all":
        # One process per stage: sentencepiece's and transformers' copies of
        # sentencepiece_model.proto cannot be loaded into the same protobuf pool.
        for stage in ("train", "export", "oracle"):
            subprocess.run([sys.executable, os.path.abspath(__file__), "--work", args.work, "--stage", stage], check=True)
        return 0
    {"train": train, "export": export, "oracle": oracle}[args.stage](args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
