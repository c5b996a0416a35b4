"""Build the ``multilingual`` dev set of `semdexd bench quality` from translations shipped by Debian.

Run once on a Debian machine (the catalogs are Debian packages' data, not semdex dependencies):

    python scripts/make_multilingual_set.py

It writes the corpus to ``semdexd/bench/multilingual.json`` and the labelled queries to the
``multilingual`` key of ``semdexd/bench/devsets.json`` (the other keys are kept). Nobody on this
project wrote any of the text: every document and every query is a message or its translation.

Languages: English (the msgid) and German, French, Spanish, Japanese, Chinese (zh_CN) (the msgstr
of the installed gettext catalogs, ``/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo``).

Two kinds of entry:

* ``settings``: a GNOME desktop setting (``/usr/share/glib-2.0/schemas/*.gschema.xml``, with its
  translations in ``gsettings-desktop-schemas.mo``). Document: the setting's description in one
  language; query: its summary, in the same language for about half (a paraphrase: "Disable lock
  screen" finds "Prevent the user to lock his screen.") and in another for the rest.
* ``messages``: a descriptive message of a program (GTK property blurbs, PostgreSQL, GLib, GnuPG,
  coreutils, ...). Document: the message in one language; query: the same message in another
  language (an exact label, different words). Messages with identifiers, numbers, format
  directives or upper-case keywords are left out, since those survive translation and would let
  a lexical match win by copying. Only about half of them are asked; the rest stay as distractors.

Each entry is a file of its own, ``multilingual/<doc lang>/<domain>-<hash>.txt``: a message or a
setting's description is a sentence or a short paragraph, one chunk, so a query is matched with
its entry alone (files of many unrelated entries cut into mixed chunks would measure that mixing
more than the languages: multilingual-e5-small found 63% of the cross-language entries in its top
10 one entry a vector, 16% in chunks of six). The languages are picked by a hash of the entry, so
the choice is stable and unrelated to the text. Query ids end in ``:<query lang>><doc lang>``.
"""

from __future__ import annotations

import gettext
import glob
import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from semdexd.bench import devsets  # noqa: E402
from semdexd.search.terms import tokens  # noqa: E402

LOCALE = Path("/usr/share/locale")
SCHEMAS = "/usr/share/glib-2.0/schemas/*.gschema.xml"
LANGS = {"en": "", "de": "de", "fr": "fr", "es": "es", "ja": "ja", "zh": "zh_CN"}   # ours -> gettext
SETTINGS_DOMAIN = "gsettings-desktop-schemas"
MESSAGE_DOMAINS = ("gtk20-properties", "postgres-15", "glib20", "gnupg2", "coreutils", "appstream",
                   "systemd", "apt", "dpkg", "tar", "gettext-tools", "libc", "bash", "wget", "PackageKit")
PER_DOMAIN = 30            # messages per domain in the corpus (at most)
ASKED_SHARE = 2            # 1 in ASKED_SHARE of them is asked
MIN_WORDS, MAX_WORDS = 6, 40
# Left out: format directives, markup, paths, options, identifiers, numbers, upper-case keywords
# and acronyms (SQL, PIN, HTTP: kept by translators, so the query would copy them).
_UNFIT = re.compile(r"[%{}$\\<>`_/=|@#\[\]*~^\x04]|--|\.\.\.|\b[A-Z]{2,}|\d|\w\(|\b\w+\.\w+\b|^[-(]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


def norm(text: str) -> str:
    return " ".join(text.split())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def catalog(domain: str, lang: str) -> dict[str, str]:
    """{normalised msgid: normalised msgstr} of one installed catalog (singular messages only)."""
    path = LOCALE / LANGS[lang] / "LC_MESSAGES" / f"{domain}.mo"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        raw = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    return {norm(k): norm(v) for k, v in raw.items() if isinstance(k, str) and k and isinstance(v, str) and v}


def translations(cats: dict[str, dict[str, str]], msgid: str) -> dict[str, str]:
    """{lang: text} of ``msgid`` in every language that has a real translation (English: itself)."""
    out = {"en": msgid}
    for lang, cat in cats.items():
        text = cat.get(msgid)
        if not text or text == msgid or (lang in ("ja", "zh") and not _CJK.search(text)):
            continue
        out[lang] = text
    return out


def pick(ident: str, options: list[str], salt: str) -> str:
    return options[int(sha(f"{salt}:{ident}"), 16) % len(options)]


def settings_entries() -> list[dict[str, object]]:
    cats = {lang: catalog(SETTINGS_DOMAIN, lang) for lang in LANGS if lang != "en"}
    entries = []
    for path in sorted(glob.glob(SCHEMAS)):
        for schema in ET.parse(path).getroot().iter("schema"):
            for key in schema.iter("key"):
                summary, description = key.find("summary"), key.find("description")
                if summary is None or description is None or not summary.text or not description.text:
                    continue
                s, d = translations(cats, norm(summary.text)), translations(cats, norm(description.text))
                both = [lang for lang in LANGS if lang in s and lang in d]
                if len(both) < len(LANGS) - 1 or len(norm(summary.text).split()) < 2:
                    continue
                ident = f"{schema.get('id')}/{key.get('name')}"
                doc_lang = pick(ident, [lang for lang in LANGS if lang in d], "doc")
                others = [lang for lang in LANGS if lang in s and lang != doc_lang]
                same = int(sha(f"same:{ident}"), 16) % 2 == 0 and doc_lang in s
                query_lang = doc_lang if same else pick(ident, others, "query")
                entries.append({"id": f"settings:{ident}", "domain": "gsettings", "doc_lang": doc_lang,
                                "doc": d[doc_lang], "query_lang": query_lang, "query": s[query_lang],
                                "asked": True})
    return entries


def message_entries(exclude: set[str]) -> list[dict[str, object]]:
    seen = set(exclude)
    entries = []
    for domain in MESSAGE_DOMAINS:
        cats = {lang: catalog(domain, lang) for lang in LANGS if lang != "en"}
        found = []
        for msgid in cats["de"]:
            words = msgid.split()
            if msgid in seen or not MIN_WORDS <= len(words) <= MAX_WORDS or _UNFIT.search(msgid):
                continue
            texts = translations(cats, msgid)
            if len(texts) < len(LANGS) or any(_UNFIT.search(t) for t in texts.values()):
                continue
            found.append((sha(f"{domain}:{msgid}"), msgid, texts))
        found.sort()
        for n, (digest, msgid, texts) in enumerate(found[:PER_DOMAIN]):
            seen.add(msgid)
            ident = f"{domain}:{digest[:12]}"
            # Japanese counted twice: few settings are translated into it, so messages make up for it.
            doc_lang = pick(ident, [*LANGS, "ja"], "doc")
            query_lang = pick(ident, [lang for lang in [*LANGS, "ja"] if lang != doc_lang], "query")
            entries.append({"id": f"messages:{ident}", "domain": domain, "doc_lang": doc_lang,
                            "doc": texts[doc_lang], "query_lang": query_lang, "query": texts[query_lang],
                            "asked": n % ASKED_SHARE == 0})
    return entries


def packages() -> dict[str, str]:
    """{Debian package: version} of the files read."""
    paths = [str(LOCALE / "de" / "LC_MESSAGES" / f"{d}.mo") for d in (SETTINGS_DOMAIN, *MESSAGE_DOMAINS)]
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True).stdout
    names = sorted({line.split(":")[0] for line in out.splitlines() if ":" in line})
    versions = {}
    for name in names:
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True).stdout
        versions[name] = v.strip()
    return versions


def main() -> int:
    settings = settings_entries()
    messages = message_entries({str(e["query"]) for e in settings} | {str(e["doc"]) for e in settings})
    entries = settings + messages
    corpus: dict[str, str] = {}
    items = []
    for e in sorted(entries, key=lambda e: str(e["id"])):
        name = f"multilingual/{e['doc_lang']}/{e['domain']}-{sha(str(e['id']))[:8]}.txt"
        assert name not in corpus, name
        corpus[name] = str(e["doc"])
        if e["asked"]:
            ident = f"{e['id']}:{e['query_lang']}>{e['doc_lang']}"
            items.append(devsets.Item("multilingual", ident, str(e["query"]), name, 1, 1,
                                      devsets.split_of("multilingual", ident)).__dict__)
    about = ("Corpus of the `multilingual` dev set (scripts/make_multilingual_set.py): translated messages "
             "and GNOME setting descriptions from Debian's gettext catalogs, one entry a file. The text is "
             "the upstream projects' and their translators' (GTK, GLib and gsettings-desktop-schemas: LGPL; "
             "PostgreSQL: PostgreSQL licence; GnuPG, coreutils, tar, wget, bash, gettext, dpkg, apt, libc, "
             "systemd, AppStream, PackageKit: GPL/LGPL), quoted here as test data.")
    data = {"about": about, "debian_packages": packages(), "files": corpus}
    devsets.MULTILINGUAL_FILE.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    sets = json.loads(devsets.SET_FILE.read_text())
    sets["multilingual"] = items
    devsets.SET_FILE.write_text(json.dumps(sets, indent=1) + "\n")
    report(entries, items)
    return 0


def report(entries: list[dict[str, object]], items: list[dict[str, object]]) -> None:
    by_id = {f"{e['id']}:{e['query_lang']}>{e['doc_lang']}": e for e in entries}
    docs: dict[str, int] = {}
    for e in entries:
        docs[str(e["doc_lang"])] = docs.get(str(e["doc_lang"]), 0) + 1
    asked: dict[str, dict[str, int]] = {}
    disjoint = same = 0
    for i in items:
        e = by_id[str(i["id"])]
        row = asked.setdefault(str(e["query_lang"]), {"tune": 0, "test": 0})
        row[str(i["split"])] += 1
        disjoint += not set(tokens(str(e["query"]))) & set(tokens(str(e["doc"])))
        same += e["query_lang"] == e["doc_lang"]
    print(f"{len(entries)} corpus entries by language: {docs}")
    print(f"{len(items)} queries by query language: {asked}; same language as the document: {same}; "
          f"sharing no token with their document: {disjoint}")


if __name__ == "__main__":
    raise SystemExit(main())
