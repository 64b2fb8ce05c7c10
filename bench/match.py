"""How fast RuleSet matches, against a naive regex loop measured in the same run (issue 3, "Speed").

    python bench/match.py [--entries 10000] [--sizes 10,100,1000,10000] [--seed 7] [--quick]

Everything is synthetic and seeded, so two runs see the same data:

- entries: half English, half Japanese (alternating, so any prefix is half and half), about 500 characters of
  title + summary each, written from a news vocabulary of the AI-compute race (companies, chips, cloud, power,
  deals, 億ドル, ギガワット...), with full-width forms ("ＮＶＩＤＩＡ", "１ＧＷ"), Latin names glued to kana
  ("Nvidiaが"), near misses ("metadata", "nvidiafan") and a long tail of made-up company and product names;
- rules: `any` lists of 2-6 terms, `all` of 2-3 `any` groups, some `none` exclusions, some limited to the title,
  English, Japanese or mixed, drawn from a vocabulary large enough that 10,000 rules are all different.

What is timed, per rule-set size (CPU time of this process, i.e. one core, so that other work on a shared
machine counts little):

- compiled: ``RuleSet.match_fields(fields)`` for every entry (scan, select, decide, Hit objects), on fields
  normalised beforehand; 3 passes over all entries, each on a freshly built RuleSet (so that its memo of hits
  starts empty and no pass profits from an earlier pass over the same entries), and for each block of 500
  entries the fastest of the 3 counts (the same work each time: the minimum filters out other processes);
- py: the same with steps 1 and 2 of the match (boundary checks, selection) in Python, ``RuleSet(native=False)``:
  what runs where watcher was installed without a C compiler (compiled == py when the C extension is not built);
- naive: for every rule, its any/all/none tree evaluated in Python with one precompiled ``re.search`` per term
  (``(?<![a-z0-9])term(?![a-z0-9])`` for Latin edges, a plain substring for CJK), on the same normalised fields;
  one pass, over only the first n entries at large sizes (the output says n), since it is slow;
- normalising the entries (``matcher.prepare``: NFKC + casefold + spaces, every field) is timed on its own, the
  same way, and added to the compiled figure for the end-to-end rate (what ``RuleSet.match(entry)`` costs).

The bench fails (AssertionError) unless the compiled matcher, with either implementation of steps 1 and 2, and the
naive loop find exactly the same rule names for each entry compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watcher.models import Entry
from watcher.rules import Rule, RuleSet
from watcher.rules.compile import RuleCompiler
from watcher.rules.matcher import prepare
from watcher.rules.native import NATIVE
from watcher.rules.normalize import is_word_char, normalize
from watcher.yamlsrc import Source

# --- vocabulary -------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


EN_COMPANIES = _words("""
Microsoft Anthropic Nvidia OpenAI Google DeepMind Meta Amazon AWS Oracle xAI AMD Intel CoreWeave
Nebius SoftBank TSMC Samsung Broadcom Apple IBM Cisco Dell Supermicro Arm Qualcomm Mistral Cohere Perplexity
Tesla Equinix Lambda Crusoe Cerebras Groq Micron Foxconn Hitachi Fujitsu NTT KDDI Alibaba Tencent Baidu
Huawei ByteDance Salesforce Snowflake Databricks Palantir Vantage Switch Iren Constellation Vistra Blackstone
BlackRock MGX G42 Humain Reliance Infosys Accenture Deloitte Hugging""")
EN_MULTI_COMPANIES = [
    "Meta Platforms", "Google Cloud", "Microsoft Azure", "Oracle Cloud", "SK Hynix", "Digital Realty",
    "Sakura Internet", "Scale AI", "Safe Superintelligence", "Thinking Machines", "Applied Digital",
    "Core Scientific", "Brookfield Asset Management", "Abu Dhabi", "Mubadala",
]  # fmt: skip
EN_PRODUCTS = _words("""
Azure Foundry Copilot Claude Opus Sonnet Haiku Gemini GPT-5 Llama Grok H100 H200 B200 GB200 GB300
Blackwell Rubin TPU TPUs Trillium Trainium Trainium2 Inferentia MI300X MI355X Gaudi NVLink InfiniBand DGX HGX
Bedrock SageMaker EC2 Fairwater Stargate Colossus Ironwood Maia Cobalt Graviton Hopper Vera""")
EN_MULTI_PRODUCTS = [
    "GitHub Copilot", "Microsoft 365 Copilot", "Azure AI Foundry", "Vertex AI", "Grace Hopper", "Project Rainier",
    "Spectrum-X", "Claude Code", "Azure OpenAI", "Copilot Studio",
]  # fmt: skip
EN_TOPIC = _words("""
compute cloud computing capacity datacenter datacenters GPU GPUs chips chip accelerator accelerators
supercomputer cluster inference training model models gigawatt gigawatts megawatt megawatts GW MW power nuclear
grid substation cooling fiber network region deal agreement contract partnership investment invests stake
acquisition merger valuation commitment commits multiyear exclusive billion bn trillion capex lease revenue
earnings guidance tariffs antitrust regulator pricing preview launch outage shortage supply wafer HBM memory
packaging CoWoS reactor turbine transformer campus hyperscaler sovereign tokens""")
EN_MULTI_TOPIC = [
    "data center", "data centers", "data centre", "frontier model", "power purchase agreement", "liquid cooling",
    "availability zone", "funding round", "capital expenditure", "export controls", "general availability",
    "supply chain", "small modular reactor", "cloud contract", "compute deal", "GPU capacity", "AI factory",
]  # fmt: skip
EN_PLACES = _words("""Wisconsin Texas Virginia Ohio Arizona Georgia Iowa Oregon Indiana Louisiana Pennsylvania Ireland
Norway Sweden Finland Japan Tokyo Osaka Hokkaido Kyushu India Malaysia Singapore Taiwan Korea Germany France
Spain Portugal Britain London Frankfurt Amsterdam Dublin Paris Seoul Sydney Melbourne Jakarta Johor
Riyadh Doha Dubai""")
EN_NOISE = _words("""geforce gaming xbox metadata meta-analysis console smartphone review rumor nvidiafan metaverse
playstation laptop headphones coupon recipe""")
EN_GENERAL = _words("""market markets shares stock investors analysts report reports quarter quarterly growth customers
software service services users product products company companies business industry sector executive chief
officer statement interview conference announcement week month year today yesterday plans plan expects expected
rise fall record demand sales profit loss cost costs spending budget team teams research researchers engineers
developers startup startups founder founders board vote election policy government officials minister ministry
law lawsuit court ruling deadline schedule program platform platforms feature features update updates version
release results estimate estimates forecast outlook target targets strategy strategic rival rivals competition
leader leaders share percent level levels price prices rate rates economy economic global local national regional
security privacy safety risk risks jobs hiring workers energy water land site sites project projects""")
EN_FILLER = _words("""the a an of to in and for with on at by from as its their this that new said says will would could
has have had is are was were be been also more than about after over into under while which who it they we
but or not most other some all up out first last next two three several many""")
EN_VERBS = _words("""signs announces unveils expands plans commits buys secures agrees launches delays confirms
reports raises builds opens extends wins loses boosts cuts""")

JA_COMPANIES = [
    "マイクロソフト", "アンソロピック", "エヌビディア", "オープンAI", "グーグル", "メタ", "アマゾン", "オラクル",
    "ソフトバンク", "富士通", "日立製作所", "NTTデータ", "さくらインターネット", "東芝", "ソニー", "トヨタ",
    "楽天", "KDDI", "NEC", "ファナック", "キオクシア", "ルネサス", "東京エレクトロン", "アドバンテスト",
    "三菱商事", "三井物産", "住友商事", "伊藤忠", "丸紅", "東京電力", "関西電力", "九州電力", "サムスン電子",
    "台湾積体電路製造", "インテル", "アップル", "テスラ", "ファーウェイ", "アリババ", "バイドゥ",
]  # fmt: skip
JA_TOPIC = [
    "演算", "演算能力", "計算資源", "計算基盤", "クラウド", "データセンター", "半導体", "生成AI", "人工知能",
    "大規模言語モデル", "推論", "学習", "電力", "原子力", "送電網", "冷却", "液冷", "契約", "提携", "出資", "投資",
    "買収", "合併", "合意", "購入", "調達", "供給", "億ドル", "兆円", "億円", "兆ドル", "ギガワット", "メガワット",
    "最大", "複数年", "独占", "決算", "売上高", "営業利益", "設備投資", "輸出規制", "関税", "独禁法", "規制当局",
    "価格", "料金", "提供開始", "一般提供", "障害", "不足", "供給網", "先端パッケージ", "高帯域メモリー",
    "画像処理半導体", "GPU", "サーバー", "スーパーコンピューター", "基盤モデル", "電源", "変電所", "用地", "国産AI",
]  # fmt: skip
JA_PLACES = [
    "東京", "大阪", "北海道", "九州", "石狩", "千葉", "京都", "福岡", "米国", "中国", "台湾", "欧州", "インド",
    "マレーシア", "シンガポール", "韓国", "テキサス州", "ウィスコンシン州", "バージニア州", "アイルランド",
]  # fmt: skip
JA_NOISE = ["ゲーム", "中古", "噂", "スマホ", "家電", "レビュー", "メタデータ"]
JA_GENERAL = [
    "市場", "株価", "投資家", "アナリスト", "四半期", "成長", "顧客", "ソフトウェア", "サービス", "利用者", "製品",
    "企業", "業界", "経営陣", "社長", "会見", "発表", "今週", "今月", "今年", "来年", "計画", "見通し", "需要",
    "販売", "利益", "損失", "費用", "予算", "研究", "開発者", "新興企業", "政府", "当局", "法律", "訴訟", "判決",
    "期限", "日程", "機能", "更新", "結果", "予想", "戦略", "競合", "首位", "割合", "水準", "経済", "安全保障",
    "人材", "採用", "従業員", "エネルギー", "水資源", "土地", "事業", "拠点", "関係者", "報道", "声明", "方針",
]  # fmt: skip
JA_PARTICLES = ["は", "が", "を", "に", "の", "で", "と", "も", "へ", "から", "まで", "について", "による", "として"]
JA_ENDINGS = [
    "と発表した。", "を明らかにした。", "する見通しだ。", "を検討している。", "と述べた。", "に合意した。",
    "を計画している。", "が報じた。", "を急ぐ。", "へ。", "に踏み切る。", "を進める。",
]  # fmt: skip
LATIN_IN_JA = ["Nvidia", "Azure", "AWS", "Claude", "Copilot", "Foundry", "OpenAI", "Anthropic", "GPU", "TPU", "Meta"]

_SYLLABLES = _words("""ka ro zen tri vo lux mar neo qua sil tek vi dra on ix ar bel cor dyn el fal gra hel ion jar
kel lum mor nov or pyr quin ra sol tor ul ven wex yl zar""")
_EN_SUFFIXES = ["", "", "", " Labs", " Systems", " AI", " Cloud", " Compute", " Energy", " Networks", " Power"]
_KANA = list(
    "カキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモラリルレロ"
    + "ガギグゲゴザジズゼゾダデドバビブベボパピプペポ"
)
_JA_SUFFIXES = ["", "", "", *_words("ホールディングス 電機 工業 テクノロジーズ データ エナジー ネットワークス")]


def _en_name(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return word.capitalize() + rng.choice(_EN_SUFFIXES)


def _ja_name(rng: random.Random) -> str:
    body = "".join(rng.choice(_KANA) for _ in range(rng.randint(3, 5)))
    return body + ("ー" if rng.random() < 0.3 else "") + rng.choice(_JA_SUFFIXES)


@dataclass(frozen=True)
class Vocabulary:
    """The word pools entries and rules draw from; the long tails are made-up names, unique per language."""

    en_names: tuple[str, ...]  # real companies and products
    en_topic: tuple[str, ...]  # compute, cloud, power, deal words and places
    en_tail: tuple[str, ...]  # made-up company and product names
    ja_names: tuple[str, ...]
    ja_topic: tuple[str, ...]
    ja_tail: tuple[str, ...]

    @classmethod
    def build(cls, rng: random.Random) -> Vocabulary:
        en_tail: dict[str, None] = {}
        while len(en_tail) < 3000:
            en_tail[_en_name(rng)] = None
        ja_tail: dict[str, None] = {}
        while len(ja_tail) < 2000:
            ja_tail[_ja_name(rng)] = None
        return cls(
            en_names=(*EN_COMPANIES, *EN_MULTI_COMPANIES, *EN_PRODUCTS, *EN_MULTI_PRODUCTS),
            en_topic=(*EN_TOPIC, *EN_MULTI_TOPIC, *EN_PLACES),
            en_tail=tuple(en_tail),
            ja_names=(*JA_COMPANIES,),
            ja_topic=(*JA_TOPIC, *JA_PLACES),
            ja_tail=tuple(ja_tail),
        )


def _zipf(rng: random.Random, pool: Sequence[str], s: float = 1.0) -> str:
    """A word from `pool`, the first ones much more often (news talks about Nvidia more than about Groq)."""
    # inverse-CDF of a continuous power law over ranks 1..n, cheap enough to call per word
    n = len(pool)
    u = rng.random()
    rank = int(n**u) if s == 1.0 else int(((n ** (1 - s) - 1) * u + 1) ** (1 / (1 - s)))
    return pool[min(max(rank, 1), n) - 1]


# --- entries ----------------------------------------------------------------------------------------------


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def _en_amount(rng: random.Random) -> str:
    n = rng.choice(["1", "2.5", "4", "5", "10", "15", "30", "40", "80", "100", "300", "500"])
    return rng.choice(
        [f"${n} billion", f"US${n}bn", f"up to ${n}bn", f"USD {n} billion", f"${n} million", f"{n} gigawatts",
         f"{n}GW", f"{n} megawatts", f"€{n}bn", f"{n} MW"]
    )  # fmt: skip


def _ja_amount(rng: random.Random) -> str:
    n = rng.choice(["1", "5", "30", "100", "300", "1000", "1兆2000"])
    forms = [f"{n}億ドル", f"最大{n}億ドル", f"{n}億円", f"{n}兆円", f"{n}GW", f"{n}メガワット", f"{n}ギガワット"]
    s = rng.choice(forms)
    return _fullwidth(s) if rng.random() < 0.3 else s


def _en_word(rng: random.Random, v: Vocabulary, core: float) -> str:
    r = rng.random()
    if r < core * 0.45:
        w = _zipf(rng, v.en_names)
        r2 = rng.random()
        return w.upper() if r2 < 0.1 else _fullwidth(w.upper()) if r2 < 0.13 else w
    if r < core * 0.85:
        return _zipf(rng, v.en_topic, 0.8)
    if r < core:
        return rng.choice(v.en_tail)
    if r < core + 0.03:
        return _en_amount(rng)
    if r < core + 0.04:
        return rng.choice(EN_NOISE)
    if r < core + 0.06:
        return rng.choice(EN_VERBS)
    if r < core + 0.30:
        return rng.choice(EN_GENERAL)
    return rng.choice(EN_FILLER)


def _en_sentence(rng: random.Random, v: Vocabulary, words: int, core: float) -> str:
    out = [_en_word(rng, v, core) for _ in range(words)]
    for i in range(2, len(out) - 2):
        if rng.random() < 0.06:
            out[i] += ","
    out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


def _ja_word(rng: random.Random, v: Vocabulary, core: float) -> str:
    r = rng.random()
    if r < core * 0.30:
        return _zipf(rng, v.ja_names)
    if r < core * 0.45:
        w = _zipf(rng, LATIN_IN_JA)
        return _fullwidth(w.upper()) if rng.random() < 0.25 else w  # "ＮＶＩＤＩＡ", "Nvidiaが"
    if r < core * 0.85:
        return _zipf(rng, v.ja_topic, 0.8)
    if r < core:
        return rng.choice(v.ja_tail)
    if r < core + 0.04:
        return _ja_amount(rng)
    if r < core + 0.05:
        return rng.choice(JA_NOISE)
    return rng.choice(JA_GENERAL)


def _ja_sentence(rng: random.Random, v: Vocabulary, chunks: int, core: float) -> str:
    parts: list[str] = []
    for i in range(chunks):
        parts.append(_ja_word(rng, v, core))
        if i < chunks - 1:
            parts.append(rng.choice(JA_PARTICLES) if rng.random() < 0.85 else "、")
    w = "".join(parts) + rng.choice(JA_ENDINGS)
    return w.replace("カ", "ｶ", 1) if rng.random() < 0.03 else w  # an odd half-width kana


def make_entries(n: int, seed: int = 7) -> list[Entry]:
    """`n` entries, alternating English and Japanese, about 500 characters of title + summary each."""
    rng = random.Random(seed)
    v = Vocabulary.build(random.Random(seed + 1))
    out: list[Entry] = []
    for i in range(n):
        if i % 2 == 0:
            title = _en_sentence(rng, v, rng.randint(7, 11), core=0.35)
            sentences: list[str] = []
            while len(title) + sum(len(s) + 2 for s in sentences) < 470:
                sentences.append(_en_sentence(rng, v, rng.randint(10, 18), core=0.12))
            summary = ". ".join(sentences) + "."
        else:
            title = _ja_sentence(rng, v, rng.randint(3, 5), core=0.3)
            body = ""
            while len(title) + len(body) < 470:
                body += _ja_sentence(rng, v, rng.randint(4, 8), core=0.1)
            summary = body
        out.append(Entry(key=f"e{i}", title=title, link=f"https://news.example/{i}", summary=summary))
    return out


# --- rules ------------------------------------------------------------------------------------------------


def _term(rng: random.Random, v: Vocabulary, lang: str, kind: str) -> str:
    """A term of `kind`: "topic" (compute, cloud, 演算...), "name" (mostly a specific, rarer company or product),
    or "broad" (a big name such as Microsoft a third of the time: only sensible next to a qualifying group)."""
    if lang == "mixed":
        lang = rng.choice(("en", "ja"))
    names, topic, tail = (v.en_names, v.en_topic, v.en_tail) if lang == "en" else (v.ja_names, v.ja_topic, v.ja_tail)
    if kind == "topic":
        return _zipf(rng, topic, 0.3)
    core = 0.3 if kind == "broad" else 0.05
    return rng.choice(names) if rng.random() < core else rng.choice(tail)


def _group(rng: random.Random, v: Vocabulary, lang: str, kind: str, lo: int, hi: int) -> list[str]:
    terms: dict[str, None] = {}
    want = rng.randint(lo, hi)
    while len(terms) < want:
        terms[_term(rng, v, lang, kind)] = None
    return list(terms)


def make_rules(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` rules as they would be written in rules.yaml (plain dicts), all different.

    As in a real rule set, an `any` rule watches specific names (a rule on "Microsoft" alone would fire on every
    other story), broad names come with a qualifying group (`all: [[Microsoft...], [datacenter, GW...]]`), and a
    few broad topic rules (`any: [data center, データセンター]`) match often.
    """
    rng = random.Random(seed * 1_000_003 + n)
    v = Vocabulary.build(random.Random(seed + 1))
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rules) < n:
        lang = rng.choices(("en", "ja", "mixed"), (0.4, 0.25, 0.35))[0]
        rule: dict[str, Any] = {"name": f"r{len(rules):05d}", "tags": ["rival-deals"]}
        if rng.random() < 0.05:
            rule["in"] = "title"
        if rng.random() < 0.6:  # any of 2-6 names (or, now and then, topic words)
            rule["any"] = _group(rng, v, lang, "topic" if rng.random() < 0.01 else "name", 2, 6)
        else:  # all of 2-3 any groups: who, and what about
            groups = [_group(rng, v, lang, "broad", 2, 5), _group(rng, v, lang, "topic", 2, 5)]
            if rng.random() < 0.4:
                groups.append(_group(rng, v, lang, "topic", 2, 4))
            rule["all"] = [{"any": g} for g in groups]
        if rng.random() < 0.2:
            noise = EN_NOISE if lang == "en" else JA_NOISE if lang == "ja" else EN_NOISE + JA_NOISE
            rule["none"] = rng.sample(noise, rng.randint(1, 3))
        key = repr({k: val for k, val in rule.items() if k != "name"})
        if key not in seen:
            seen.add(key)
            rules.append(rule)
    return rules


def compile_rules(rules: list[dict[str, Any]]) -> list[Rule]:
    src = Source("<bench>", "")
    compiled = RuleCompiler(src).rules(rules)
    if src.issues:
        raise AssertionError(f"the generated rules do not compile: {src.issues[:3]}")
    return compiled


# --- the naive baseline -----------------------------------------------------------------------------------

Naive = tuple[Any, ...]  # ("term", field, pattern) | ("any" | "all" | "none", children)


def _naive_pattern(text: str) -> re.Pattern[str]:
    phrase = normalize(text)
    left = "(?<![a-z0-9])" if is_word_char(phrase[0]) else ""
    right = "(?![a-z0-9])" if is_word_char(phrase[-1]) else ""
    return re.compile(left + re.escape(phrase) + right)


def _naive_node(key: str, value: Any, field: str) -> Naive:
    children: list[Naive] = []
    for item in value:
        if isinstance(item, str):
            children.append(("term", field, _naive_pattern(item)))
        else:
            children.append(_naive_tree(item, field))
    return (key, tuple(children))


def _naive_tree(node: dict[str, Any], field: str) -> Naive:
    """A rule (or nested condition) -> tree; several condition keys in one mapping must all hold."""
    field = node.get("in", field)
    parts = [_naive_node(k, node[k], field) for k in node if k in ("any", "all", "none")]
    return parts[0] if len(parts) == 1 else ("all", tuple(parts))


def naive_rules(rules: list[dict[str, Any]]) -> list[tuple[str, Naive]]:
    return [(r["name"], _naive_tree(r, "text")) for r in rules]


def _naive_eval(node: Naive, fields: dict[str, str]) -> bool:
    kind = node[0]
    if kind == "term":
        return node[2].search(fields[node[1]]) is not None
    if kind == "any":
        return any(_naive_eval(c, fields) for c in node[1])
    if kind == "all":
        return all(_naive_eval(c, fields) for c in node[1])
    return not any(_naive_eval(c, fields) for c in node[1])


def naive_match(rules: list[tuple[str, Naive]], fields: dict[str, str]) -> list[str]:
    return [name for name, tree in rules if _naive_eval(tree, fields)]


def compiled_match(rules: RuleSet, fields: dict[str, str]) -> list[str]:
    return [h.rule for h in rules.match_fields(fields)]


def check_same_hits(rules: list[dict[str, Any]], docs: list[dict[str, str]]) -> int:
    """Match `docs` with the compiled matcher (each implementation of its steps 1 and 2 built here) and the naive
    loop; AssertionError at the first difference, else the number of hits."""
    compiled, naive = compile_rules(rules), naive_rules(rules)
    want = [naive_match(naive, f) for f in docs]
    hits = [_compare([compiled_match(RuleSet(compiled, native=n), f) for f in docs], want, docs) for n in IMPLS]
    return hits[0]


IMPLS = (True, False) if NATIVE else (False,)  # C steps when built, and the Python steps


def _compare(compiled: list[list[str]], naive: list[list[str]], docs: list[dict[str, str]]) -> int:
    for i, (got, want) in enumerate(zip(compiled, naive, strict=True)):
        if got != want:  # not `assert`: the bench must check under python -O too
            raise AssertionError(f"entry {i}: compiled {got} != naive {want}\n{docs[i]['text'][:300]}")
    return sum(len(h) for h in compiled)


# --- timing -----------------------------------------------------------------------------------------------


def _cpu(fn: Callable[[], object]) -> float:
    """CPU seconds of this process spent in fn(): one core's work, whatever else the machine runs."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


BLOCK = 500  # entries per timed block


def _best_of(passes: int, start: Callable[[], Callable[[Any], object]], items: Sequence[Any]) -> float:
    """CPU seconds for one call per item: `passes` passes over `items`, each with a fresh callable from start();
    per block of BLOCK items the fastest pass counts. Every pass does the same work in the same order, so the
    minimum filters out the moments when another process had the core, or its caches."""
    blocks = [items[i : i + BLOCK] for i in range(0, len(items), BLOCK)]
    best = [float("inf")] * len(blocks)
    for _ in range(passes):
        fn = start()
        for k, block in enumerate(blocks):
            best[k] = min(best[k], _cpu(lambda fn=fn, block=block: [fn(x) for x in block]))
    return sum(best)


def _naive_budget(size: int, entries: int, quick: bool) -> int:
    """Entries the naive loop is timed on: all of them while affordable, then a prefix (half EN, half JA)."""
    rule_evaluations = 200_000 if quick else 2_000_000
    return max(20, min(entries, rule_evaluations // size))


def run(entries_n: int, sizes: list[int], seed: int, quick: bool) -> None:
    wall = time.perf_counter()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"bench/match.py: Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs,"
        f" load average {load}; seed {seed}"
    )
    entries = make_entries(entries_n, seed)
    chars = sum(len(e.title) + len(e.summary) for e in entries) / len(entries)
    print(f"{len(entries):,} synthetic entries, half English and half Japanese, {chars:.0f} chars of title + summary")
    print(
        f"Times are CPU time of this process (one core). Compiled and normalisation figures: best of 3 passes,"
        f" block by block ({BLOCK} entries), to filter out other work on the machine."
    )
    docs = [prepare(e) for e in entries]
    t_norm = _best_of(3, lambda: prepare, entries)
    print(
        f"Normalising every field of the {len(entries):,} entries (matcher.prepare, NFKC + casefold + spaces):"
        f" {t_norm * 1e3:.0f} ms, {len(entries) / t_norm:,.0f} entries/s"
    )
    print()
    print("compiled  RuleSet.match_fields on the normalised fields: scan, select, decide, Hit objects;")
    print("          all entries, each pass on a freshly built RuleSet. Steps 1-2 (boundary checks, selection):")
    print(f"          {'in C (watcher/rules/_select.c)' if NATIVE else 'in Python: the C extension is not built'}")
    print("py/s      the same with steps 1-2 in Python (RuleSet(native=False)): where no C compiler was at hand")
    print("e2e       the same plus normalisation (matcher.prepare), i.e. what RuleSet.match(entry) costs")
    print("naive     per rule, any/all/none in Python with one precompiled re.search per term, on the same")
    print("          normalised fields; one pass over the first n entries (half English, half Japanese)")
    print("ratio     compiled/s / naive/s")
    print("cand/e    rules the prefilter selects per entry (then decided, or evaluated in full), over the n entries")
    print("hits/e    rules that match per entry, over the n entries")
    print(
        "same hits the matchers (compiled, with either steps 1-2, and naive) return the same rule names for each of"
        " the n entries (checked, else the bench fails)"
    )
    print()
    head = (
        f"{'rules':>6} {'build':>6} {'compiled/s':>11} {'e2e/s':>9} {'py/s':>9} {'naive/s':>9} {'n':>6} {'ratio':>7}"
        f" {'cand/e':>7} {'hits/e':>7}  same hits"
    )
    print(head)
    print("-" * len(head))
    for size in sizes:
        rule_dicts = make_rules(size, seed)
        t0 = time.process_time()
        rules = compile_rules(rule_dicts)
        ruleset = RuleSet(rules)
        t_load = time.process_time() - t0
        # a fresh RuleSet per pass: its memo of hits starts empty, no pass profits from an earlier one
        t_compiled = _best_of(3, lambda rules=rules: RuleSet(rules).match_fields, docs)
        t_python = (
            _best_of(3, lambda rules=rules: RuleSet(rules, native=False).match_fields, docs) if NATIVE else t_compiled
        )

        subset = docs[: _naive_budget(size, len(docs), quick)]
        naive = naive_rules(rule_dicts)
        naive_hits: list[list[str]] = []
        t_naive = _cpu(lambda nv=naive, sub=subset, out=naive_hits: out.extend(naive_match(nv, f) for f in sub))
        hits = _compare([compiled_match(ruleset, f) for f in subset], naive_hits, subset)
        if NATIVE:
            _compare([compiled_match(RuleSet(rules, native=False), f) for f in subset], naive_hits, subset)

        cands = sum(len(ruleset.candidates(ruleset.prepare(f))) for f in subset) / len(subset)
        rate_c, rate_n = len(docs) / t_compiled, len(subset) / t_naive
        rate_e2e = len(docs) / (t_compiled + t_norm)
        print(
            f"{size:>6,} {t_load:>5.2f}s {rate_c:>11,.0f} {rate_e2e:>9,.0f} {len(docs) / t_python:>9,.0f}"
            f" {rate_n:>9,.0f} {len(subset):>6,}"
            f" {rate_c / rate_n:>6,.0f}x {cands:>7.1f} {hits / len(subset):>7.2f}  yes"
        )
        sys.stdout.flush()
    print(
        f"\nbuild: compiling the rules and building the RuleSet. Whole bench: {time.perf_counter() - wall:.0f} s wall."
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--entries", type=int, default=10_000, help="synthetic entries (default 10000)")
    p.add_argument("--sizes", default="10,100,1000,10000", help="rule-set sizes, comma-separated")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="2,000 entries and a small naive budget: < 1 min")
    a = p.parse_args(argv)
    entries = min(a.entries, 2_000) if a.quick else a.entries
    run(entries, [int(s) for s in a.sizes.split(",")], a.seed, a.quick)


if __name__ == "__main__":
    main()
