"""Decides a new comment's fate from a site's rules and the facts the caller looked up, and says why."""

import ipaddress
import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache
from itertools import accumulate, compress, count, islice
from operator import add, itemgetter
from urllib.parse import urlsplit


class Status(StrEnum):
    """Where a comment stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    FLAGGED = "flagged"


MODES = ("pre", "known_authors", "post")
ACTIONS = ("reject", "hold", "flag")  # what a word list's match does to a comment
BODY_CAP = 10_000
REPEAT_ARTICLES = 3  # the same text on this many articles within a day is held
PUBLISH_LINK_SENT = "held: new author on this browser, with a verified email: a 'Publish my comment' link was emailed"
CONTRACT_KEYS = (
    "moderation_mode", "blocked_words", "held_words", "max_links", "flood_seconds", "max_length", "close_after_days",
    "allowed_origins",
)  # fmt: skip
DEFAULT_RULES = {
    "moderation_mode": "pre", "blocked_words": [], "held_words": [], "max_links": 2, "flood_seconds": 15,
    "max_length": BODY_CAP, "close_after_days": 0, "allowed_origins": [],
    "blocked_words_action": "reject", "held_words_action": "hold", "blocked_emails": [], "blocked_email_domains": [],
    "blocked_ips": [], "min_length": 0, "max_depth": 5, "min_fill_seconds": 3, "ip_retention_days": 30,
    "report_threshold": 3,  # reader reports that hide a published comment until a moderator decides
}  # fmt: skip
_RANGES = {
    "max_links": (0, 1000), "flood_seconds": (0, 86400), "max_length": (1, BODY_CAP), "close_after_days": (0, 36500),
    "min_length": (0, BODY_CAP), "max_depth": (1, 50), "min_fill_seconds": (0, 60), "ip_retention_days": (0, 3650), "report_threshold": (1, 1000),
}  # fmt: skip
_VERDICTS = {"reject": (Status.REJECTED, "rejected"), "hold": (Status.PENDING, "held"), "flag": (Status.FLAGGED, "flagged")}
_MAX_ENTRIES, _MAX_ENTRY_CHARS, _MAX_WORD_REASONS = 5000, 100, 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.?|[0-9a-f:.]*:[0-9a-f:.]*")
_CHUNK = 256
_FIELDS = ("text", "name", "email", "website")  # every place a spammer can put words
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕһԁӏԛԝкАВЕКМНОРСТУХІЈЅ" "αεικνορτυχϲϳΑΒΕΖΗΙΚΜΝΟΡΤΥΧ" "ıɑɡօ",
    "aeopcyxijshdlqwkabekmhopctyxijs" "aeikvoptuxcjabezhikmnoptyx" "iago",
)


class RulesError(ValueError):
    """A bad rules document; .key names the rule at fault ("" for the document), str() is a sentence for a person."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem[0].upper() + problem[1:]


def _show(value: object) -> str:
    """A short repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_rules(data: object) -> dict:
    """Checks a whole rules document and returns it normalised, missing keys taking their default."""
    if not isinstance(data, dict):
        raise RulesError("", f"the rules must be a JSON object, got {type(data).__name__} {_show(data)}")
    for key in data:
        if key not in DEFAULT_RULES:
            raise RulesError(str(key), f"not a known rule (known rules: {', '.join(DEFAULT_RULES)})")
    out = {}
    for key, default in DEFAULT_RULES.items():
        value = data.get(key, default)
        if key == "moderation_mode":
            if not isinstance(value, str) or value not in MODES:
                raise RulesError(key, f"must be one of 'pre', 'known_authors' or 'post', got {_show(value)}")
        elif key.endswith("_action"):
            if not isinstance(value, str) or value not in ACTIONS:
                raise RulesError(key, f"must be one of 'reject', 'hold' or 'flag', got {_show(value)}")
        elif key in _RANGES:
            low, high = _RANGES[key]
            if type(value) is not int or not low <= value <= high:  # type(), not isinstance: True is not a number here
                raise RulesError(key, f"must be a whole number from {low} to {high}, got {_show(value)}")
        else:
            value = _clean_list(key, value, _LIST_ITEMS.get(key, _entry))
        out[key] = value
    if out["min_length"] > out["max_length"]:
        raise RulesError("min_length", f"must not be more than max_length ({out['max_length']}), got {out['min_length']}")
    return out


def with_defaults(site_rules: dict) -> dict:
    """A stored rules document with the rules added since it was written taking their default."""
    return site_rules if site_rules.keys() >= DEFAULT_RULES.keys() else {**DEFAULT_RULES, **site_rules}


def _clean_list(key: str, value: object, clean) -> list[str]:
    """value as a list of clean(item), duplicates dropped; clean raises ValueError saying what an item must be."""
    if not isinstance(value, list):
        raise RulesError(key, f"must be a list, got {_show(value)}")
    if len(value) > _MAX_ENTRIES:
        raise RulesError(key, f"must have at most {_MAX_ENTRIES} entries, got {len(value)}")
    out: dict[str, None] = {}
    for n, item in enumerate(value, 1):
        try:
            out[clean(item)] = None
        except ValueError as error:
            raise RulesError(key, f"entry {n} {error}, got {_show(item)}") from None
    return list(out)


def _entry(item: object) -> str:
    """A word-list entry, stripped."""
    if not isinstance(item, str) or not item.strip():
        raise ValueError("must be a non-empty word or phrase")
    if len(item.strip()) > _MAX_ENTRY_CHARS:
        raise ValueError(f"must be at most {_MAX_ENTRY_CHARS} characters long")
    if not _normalise(item).split():
        raise ValueError("must have a letter or digit in it")
    return item.strip()


def _origin(item: object) -> str:
    """item as 'scheme://host[:port]' in lower case, without a default port."""
    problem = ValueError("must be an origin like 'https://example.com:8443' (no path, query or user)")
    if not isinstance(item, str) or any(c in item.strip() for c in "?#@\\ \t\r\n"):
        raise problem
    try:
        parts = urlsplit(item.strip().lower())
        port, host = parts.port, parts.hostname or ""
    except ValueError:
        raise problem from None
    if parts.scheme not in _DEFAULT_PORTS or parts.path not in ("", "/") or port == 0 or not _HOST.fullmatch(host):
        raise problem
    host = f"[{host}]" if ":" in host else host.rstrip(".")
    # Browsers leave the default port out of an Origin header, so it must not be in the stored origin either.
    suffix = f":{port}" if port and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{suffix}"


def _email(item: object) -> str:
    """An email address in lower case."""
    if not isinstance(item, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", item.strip()) or len(item) > 254:
        raise ValueError("must be an email address like 'name@example.com'")
    return item.strip().lower()


def _domain(item: object) -> str:
    """A domain name in lower case, without a leading '@'."""
    host = item.strip().lower().removeprefix("@").rstrip(".") if isinstance(item, str) else ""
    if "." not in host or len(host) > 253 or not _HOST.fullmatch(host) or ":" in host:
        raise ValueError("must be a domain like 'spam.example'")
    return host


def _network(item: object) -> str:
    """An IP address or range in CIDR notation, host bits cleared."""
    try:
        return str(ipaddress.ip_network(item.strip(), strict=False))
    except (AttributeError, ValueError):
        raise ValueError("must be an IP address or range like '203.0.113.0/24' or '2001:db8::/32'") from None


_LIST_ITEMS = {"allowed_origins": _origin, "blocked_emails": _email, "blocked_email_domains": _domain,
               "blocked_ips": _network}


@dataclass(frozen=True)
class Draft:
    """The new comment, as the rules see it; text is the visible text of the sanitized body."""

    text: str
    links: int
    name: str = ""
    email: str = ""
    website: str = ""
    ip: str = ""


@dataclass(frozen=True)
class Facts:
    """What the caller looked up; known_author comes from a signed author token, never from a typed name or email."""

    known_author: bool = False
    seconds_since_last_from_ip: float | None = None
    seconds_since_last_from_email: float | None = None
    article_age_days: float | None = None
    article_closed: bool = False
    honeypot_filled: bool = False
    seconds_to_fill: float | None = None  # from the signed form token's issue time; None without a form
    repeated_on_articles: int = 1  # articles with this same text within a day, this one included
    author_trusted: bool | None = None  # marked by a moderator: True trusted, False untrusted, None not marked
    banned_until: str | None = None  # "2026-12-06 19:00 UTC" while a moderator's ban covers this email or IP
    # The email was proved by its owner on this site (a confirmation link) and may be mailed a "Publish my comment"
    # link; never a reason to publish by itself, as anyone can type an address.
    email_verified: bool = False


@dataclass(frozen=True)
class Refusal:
    """The comment is not taken at all and nothing is stored."""

    status_code: int
    message: str
    field: str | None = None


@dataclass(frozen=True)
class Decision:
    """A stored comment's status and the reasons a moderator reads."""

    status: Status
    reasons: tuple[str, ...]
    # Held only for a new browser of a verified email: mail that address a link that publishes the comment.
    publish_by_email_link: bool = False


def refuse(draft: Draft, rules: dict, facts: Facts) -> Refusal | None:
    """A refusal if the comment must not be stored (closed 403, too long or short 400, too fast 429), else None."""
    rules = with_defaults(rules)
    days, age = rules["close_after_days"], facts.article_age_days
    if facts.article_closed or (days > 0 and age is not None and age >= days):
        return Refusal(403, "Comments are closed on this article.")
    length, limit = len(draft.text), min(rules["max_length"], BODY_CAP)
    if length > limit:
        return Refusal(400, f"Your comment is too long: {length} characters (limit {limit}).", "body")
    if length < rules["min_length"]:
        return Refusal(400, f"Your comment is too short: {length} characters (at least {rules['min_length']}).", "body")
    wait = rules["flood_seconds"]
    since = [s for s in (facts.seconds_since_last_from_ip, facts.seconds_since_last_from_email) if s is not None]
    if wait > 0 and since and min(since) < wait:
        return Refusal(429, "You are posting comments too quickly. Slow down.")
    return None


def decide(draft: Draft, rules: dict, facts: Facts) -> Decision:
    """REJECTED on a blocked sender or a rejecting word list; FLAGGED on a flagging one; else PENDING with
    every hold reason (and a "Publish my comment" link to ask for, when a verified email on a new browser is the
    only one); else APPROVED."""
    rules = with_defaults(rules)
    if facts.banned_until:
        return Decision(Status.REJECTED, (f"rejected: banned until {facts.banned_until}",))
    lists = ("blocked_words", "held_words")
    matcher = _compile(tuple(tuple(rules[key]) for key in lists))  # both lists in one pass over each field
    hits = [(field, _Words(value).find(matcher)) for field in _FIELDS if (value := getattr(draft, field))]
    found: dict[Status, list[str]] = {Status.REJECTED: _blocked_sender(draft, rules), Status.FLAGGED: [],
                                      Status.PENDING: []}
    for n, key in enumerate(lists):
        status, verdict = _VERDICTS[rules[f"{key}_action"]]
        found[status] += _word_reasons(verdict, key.removesuffix("_words"), n, hits)
    if found[Status.REJECTED]:
        return Decision(Status.REJECTED, tuple(found[Status.REJECTED]))
    reasons = found[Status.PENDING]
    if draft.links > rules["max_links"]:
        noun = "link" if draft.links == 1 else "links"
        reasons.append(f"held: contains {draft.links} {noun} (limit {rules['max_links']})")
    if facts.honeypot_filled:
        reasons.append("held: the hidden field 'Leave this empty' was filled in (people never see it)")
    mode, known = rules["moderation_mode"], facts.known_author or facts.author_trusted is True
    # A form sent back faster than people write holds the comment, except in "post" mode, which publishes at once
    # whatever happens: there the reason is only noted, for the moderators who look at what was published.
    too_fast = facts.seconds_to_fill is not None and facts.seconds_to_fill < rules["min_fill_seconds"]
    fast = f"filled too fast ({facts.seconds_to_fill:.1f} s)" if too_fast else ""
    if too_fast and mode != "post":
        reasons.append(f"held: {fast}")
    if facts.repeated_on_articles >= REPEAT_ARTICLES:
        reasons.append(f"held: repeated on {facts.repeated_on_articles} articles within a day")
    if facts.author_trusted is False:
        reasons.append("held: author marked untrusted by a moderator")
    if mode == "pre":
        reasons.append("held: pre-moderation (every comment waits for a moderator)")
    elif mode == "known_authors" and not known:
        if facts.email_verified and not reasons and not found[Status.FLAGGED]:  # nothing else to wait for
            return Decision(Status.PENDING, (PUBLISH_LINK_SENT,), publish_by_email_link=True)
        reasons.append("held: new author (no earlier approved comment)")
    noted = [f"noted: {fast}"] if too_fast and mode == "post" else []
    if found[Status.FLAGGED]:
        return Decision(Status.FLAGGED, tuple(found[Status.FLAGGED] + reasons + noted))
    if reasons:
        return Decision(Status.PENDING, tuple(reasons + noted))
    if mode == "known_authors":
        return Decision(Status.APPROVED, ("approved: trusted author" if facts.author_trusted and not facts.known_author
                                          else "approved: known author",))
    return Decision(Status.APPROVED, ("approved: post-moderation", *noted))


def _blocked_sender(draft: Draft, rules: dict) -> list[str]:
    """Reasons to reject a comment for its sender: a blocked email address, email domain or IP range."""
    reasons = []
    email = draft.email.strip().lower()
    if email and email in rules["blocked_emails"]:
        reasons.append("rejected: blocked email address")
    domain = email.rpartition("@")[2]
    for blocked in rules["blocked_email_domains"]:
        if domain == blocked or domain.endswith("." + blocked):
            reasons.append(f"rejected: blocked email domain '{blocked}'")
            break
    network = _blocked_network(draft.ip, tuple(rules["blocked_ips"])) if draft.ip and rules["blocked_ips"] else None
    if network:
        reasons.append(f"rejected: IP address in blocked range '{network}'")
    return reasons


def _blocked_network(ip: str, networks: tuple[str, ...]) -> str | None:
    """The first of networks that holds ip, if any; an IPv4-mapped IPv6 address counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    address = getattr(address, "ipv4_mapped", None) or address
    return next((str(net) for net in _networks(networks) if address in net), None)


@lru_cache(maxsize=64)
def _networks(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(map(ipaddress.ip_network, networks))


# Which rule a stored reason comes from, for the settings page's counts: (how the reason begins, rule).
REASON_RULES = (
    ("matched blocked word", "blocked_words"), ("matched held word", "held_words"), ("matched ", "held_words"),
    ("blocked email address", "blocked_emails"), ("blocked email domain", "blocked_email_domains"),
    ("IP address in blocked range", "blocked_ips"), ("contains ", "max_links"), ("the hidden field", "honeypot"),
    ("filled too fast", "time_trap"), ("repeated on", "repeated_text"), ("author marked untrusted", "author_trust"),
    ("pre-moderation", "moderation_mode"), ("new author", "moderation_mode"),
)  # fmt: skip


def rule_of(reason: str) -> str | None:
    """The rule a reason from decide() names ("held: contains 3 links" -> "max_links"), or None for an approval."""
    verdict, _, said = reason.partition(": ")
    if verdict == "approved":
        return None
    found = next((rule for start, rule in REASON_RULES if said.startswith(start)), None)
    if found == "held_words" and " blocked word" in said.split("'")[0]:  # "matched 3 more blocked words"
        return "blocked_words"
    return found


def _word_reasons(verdict: str, kind: str, n: int, hits: list[tuple[str, list[tuple["Tag", str]]]]) -> list[str]:
    """One reason per entry of word list n found in each of the draft's fields; capped so spam cannot flood the list."""
    reasons = []
    for field, found in hits:
        where = "" if field == "text" else f" in {field}"
        for (list_index, entry), matched in found:
            if list_index == n:
                seen = "" if matched == entry else f" (as '{_visible(matched)}')"
                reasons.append(f"{verdict}: matched {kind} word '{entry}'{seen}{where}")
    if len(reasons) > _MAX_WORD_REASONS:
        more = len(reasons) - _MAX_WORD_REASONS
        reasons[_MAX_WORD_REASONS:] = [f"{verdict}: matched {more} more {kind} word{'s' * (more > 1)}"]
    return reasons


def _visible(text: str) -> str:
    """Matched text for a reason: whitespace collapsed, invisible characters spelled out, at most 100 characters."""
    text = "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) == "Cf" else c for c in " ".join(text.split()))
    return text if len(text) <= 100 else text[:99] + "…"


def find_words(text: str, words: list[str]) -> list[tuple[str, str]]:
    """(entry, matched text) pairs in text order: whole normalised words, "refund*" a prefix, "buy now" a sequence."""
    return [(entry, matched) for (_, entry), matched in _Words(text).find(_compile((tuple(words),)))] if words else []


class _Fold(dict):
    """ord(char) -> that character normalised, anything but a letter or digit made a space; filled lazily, as texts
    only hold a few thousand distinct characters."""

    def __missing__(self, code: int) -> str:
        text = unicodedata.normalize("NFKC", chr(code)).translate(_LOOKALIKES).casefold()
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if unicodedata.category(c) not in ("Mn", "Me", "Cf")).translate(_LOOKALIKES)
        text = "".join(c if c.isalnum() else " " for c in text)  # what [^\W_] means: the underscore splits too
        if len(self) < 50_000:  # bounded against texts made of every rare character there is
            self[code] = text
        return text


_FOLD = _Fold()


def _normalise(text: str) -> str:
    """NFKC, casefold, accents and invisible characters removed, look-alikes folded, every other character that is
    not a letter or digit a space (so .split() gives the words); character by character."""
    # Per-character folding makes positions easy to map back and is what whole-string NFKC/NFD does for our purposes.
    # On an ASCII text str.translate caches each character's lookup, which makes it as fast as str.lower().
    return text.translate(_FOLD)


Tag = tuple[int, str]  # (which word list, entry): a site's blocked and held words share one matcher


@dataclass(frozen=True)
class _Matcher:
    """Word lists compiled into lookups, so the cost of a text grows with its words, not with the lists."""

    words: dict[str, list[Tag]]  # "refund" -> [(0, "Refund")]
    stems: dict[str, list[Tag]]  # "refund" -> [(1, "refund*")]
    head: itemgetter  # w[:k] for the shortest stem length k
    heads: frozenset[str]  # each stem's first k characters
    cutters: tuple[itemgetter, ...]  # w[:k] for each stem length k
    phrases: dict[tuple[str, ...], list[Tag]]  # ("buy", "now") -> tags; ("buy", "cheap", "*") for "buy cheap*"
    # Phrases by their first two words: ("buy", "now") -> {(word count, stem length of the last word or 0)}.
    openers: dict[tuple[str, str], set[tuple[int, int]]]
    opener_firsts: frozenset[str]
    # Two-word phrases ending in a stem ("buy cheap*"), by their first word: "buy" -> {stem length}.
    stem_openers: dict[str, set[int]]


def _add(table: dict, key, tag: Tag) -> None:
    """tag under key, unless its list already has an entry there ("Refund" and "refund" are one word)."""
    tags = table.setdefault(key, [])
    if all(n != tag[0] for n, _ in tags):
        tags.append(tag)


@lru_cache(maxsize=64)
def _compile(lists: tuple[tuple[str, ...], ...]) -> _Matcher:
    """The matcher for word lists, cached so every decision under the same rules reuses it."""
    words, stems, phrases, openers, stem_openers = {}, {}, {}, {}, {}
    for n, entries in enumerate(lists):
        for entry in entries:
            star = entry.rstrip().endswith("*")
            toks = _normalise(entry).split()
            if len(toks) == 1:
                _add(stems if star else words, toks[0], (n, entry))
            elif toks:
                _add(phrases, (*toks, "*") if star else tuple(toks), (n, entry))
                if star and len(toks) == 2:
                    stem_openers.setdefault(toks[0], set()).add(len(toks[1]))
                else:
                    openers.setdefault((toks[0], toks[1]), set()).add((len(toks), len(toks[-1]) if star else 0))
    lengths = sorted({len(s) for s in stems}) or [1]
    head = itemgetter(slice(0, lengths[0]))
    heads = frozenset(map(head, stems))
    return _Matcher(words, stems, head, heads, tuple(itemgetter(slice(0, k)) for k in lengths), phrases, openers,
                    frozenset(first for first, _ in openers), stem_openers)


class _Words:
    """A text's normalised words, with lookups built once and shared by every word list checked against it."""

    def __init__(self, text: str):
        self.text = text
        if text.isascii():
            self.norm, self.chunk_ends = _normalise(text), None
        else:  # chunked, so a normalised position can be traced back without re-folding the whole text
            parts = [text[i : i + _CHUNK].translate(_FOLD) for i in range(0, len(text), _CHUNK)]
            self.norm, self.chunk_ends = "".join(parts), list(accumulate(map(len, parts)))
        self.toks = self.norm.split()
        self.seen = list(set(self.toks))

    @cached_property
    def padded(self) -> str:
        """The normalised text between spaces, where " word " finds a whole word."""
        return f" {self.norm} "

    def phrase_span(self, key: tuple[str, ...]) -> tuple[int, int]:
        """Where a phrase key that _scan found first occurs in the normalised text (words one or more spaces apart)."""
        star = key[-1] == "*"
        words = " +".join(map(re.escape, key[:-1] if star else key))
        match = re.search(f" ({words}{'[^ ]*' if star else ''}) ", self.padded)  # re caches the compiled pattern
        return match.start(1) - 1, match.end(1) - 1

    def find(self, m: _Matcher) -> list[tuple[Tag, str]]:
        """(tag, matched original text) for each entry of m found, in text order."""
        original = self._original
        return [(tag, self.text[original(start, True) : original(end, False)]) for tag, start, end in _scan(m, self)]

    def _original(self, pos: int, start: bool) -> int:
        """The index in the original text of a normalised position, taken as a match's start or end."""
        if self.chunk_ends is None:
            return pos
        c = (bisect_right if start else bisect_left)(self.chunk_ends, pos)
        before = self.chunk_ends[c - 1] if c else 0
        chunk = self.text[c * _CHUNK : (c + 1) * _CHUNK]
        if chunk.isascii():  # folded one character to one
            end = c * _CHUNK + pos - before
        else:
            ends = list(accumulate(map(len, map(_FOLD.__getitem__, map(ord, chunk))), initial=before))
            if start:
                return c * _CHUNK + bisect_right(ends, pos) - 1
            end = c * _CHUNK + bisect_left(ends, pos)
        while not start and end < len(self.text) and unicodedata.category(self.text[end]) in ("Mn", "Me"):
            end += 1  # keep its accents
        return end


def _scan(m: _Matcher, w: _Words) -> list[tuple[Tag, int, int]]:
    """(tag, start, end) in the normalised text of the first place each entry occurs, in text order."""
    hits: dict[Tag, tuple[int, int]] = {}

    def hit(tags: list[Tag], start: int, end: int) -> None:
        for tag in tags:
            if tag not in hits or start < hits[tag][0]:
                hits[tag] = (start, end)

    def hit_word(tags: list[Tag], tok: str) -> None:
        start = w.padded.find(f" {tok} ")  # the padding's leading space makes this the index in w.norm
        hit(tags, start, start + len(tok))

    for tok in m.words.keys() & w.seen:
        hit_word(m.words[tok], tok)
    if m.stems:  # only words that begin like some stem (a C-speed filter) are cut at every stem length
        for tok in compress(w.seen, map(m.heads.__contains__, map(m.head, w.seen))):
            for cut in m.cutters:
                if (tags := m.stems.get(cut(tok))) is not None:
                    hit_word(tags, tok)
    toks = w.toks
    # A phrase is looked for only where its first two words occur together, found with C-speed set filters.
    if m.openers and (firsts := m.opener_firsts.intersection(w.seen)):
        at_first = list(map(firsts.__contains__, toks))
        pairs = list(zip(compress(toks, at_first), compress(islice(toks, 1, None), at_first)))
        if opened := m.openers.keys() & set(pairs):
            for i in compress(compress(count(), at_first), map(opened.__contains__, pairs)):
                for n, k in m.openers[toks[i], toks[i + 1]]:
                    if i + n > len(toks):
                        continue
                    key = (*toks[i : i + n - 1], toks[i + n - 1][:k], "*") if k else tuple(toks[i : i + n])
                    if key in m.phrases:
                        hit(m.phrases[key], *w.phrase_span(key))
    if m.stem_openers and (firsts := m.stem_openers.keys() & w.seen):
        for i in compress(range(len(toks) - 1), map(firsts.__contains__, toks)):
            for k in m.stem_openers[toks[i]]:
                if (tags := m.phrases.get(key := (toks[i], toks[i + 1][:k], "*"))) is not None:
                    hit(tags, *w.phrase_span(key))
    return sorted(((tag, start, end) for tag, (start, end) in hits.items()), key=itemgetter(1))
