"""Finding where routines start in an unsegmented action stream.

A stream of repeated routines is a walk around cycles of the directly-follows graph (DFG). Following Leno et
al. (ICPM 2020), routine starts are the heads of those cycles: a depth-first search of the DFG from the
stream's first action finds back-edges, and a back-edge's target is where a loop begins. Structure alone
cannot say *which* action of a cycle is the first one (every rotation of a cycle is a cycle), so the
stream's first frequent action anchors it: a person's first routine instance is seen from its start.

Two refinements make this usable on real, noisy streams:

* Only frequent actions and frequent edges take part, so one-off (noise) actions neither start routines
  nor create spurious cycles.
* A cycle head is accepted as the start of *another* routine only if it is not part of the body of an
  already known routine (the actions present in most segments of that routine), cutting there leaves
  segments of at least `min_length` actions, it occurs once in most of the segments it begins, and the
  known routines' segments it would cut are not shorter than their uncut ones (`_chops`). This
  rejects the loops *inside* a routine (retrying a log-in, filling several fields through the same
  clipboard ``copy``), which would otherwise chop each instance into pieces. A candidate that follows no
  single action most of the time (a routine's first action is entered from wherever the previous instance
  ended; a step from the step before it) is judged only on where the segments it cuts end, not on their
  length: while a third routine is not yet separated, the uncut segments are longer because its instances
  are still glued onto them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence


def frequent_labels(labels: Iterable[str], min_support: int) -> set[str]:
    counts = Counter(labels)
    return {label for label, n in counts.items() if n >= min_support}


def dfg(seq: Sequence[str]) -> Counter[tuple[str, str]]:
    return Counter(itertools.pairwise(seq))


def _filtered_edges(seq: Sequence[str], *, min_support: int, min_edge_ratio: float) -> dict[str, list[str]]:
    counts = Counter(seq)
    edges = dfg(seq)
    succ: dict[str, list[tuple[int, str]]] = {}
    for (u, v), n in edges.items():
        if n >= min_support and n >= min_edge_ratio * counts[u]:
            succ.setdefault(u, []).append((n, v))
    return {u: [v for _, v in sorted(vs, key=lambda t: (-t[0], t[1]))] for u, vs in succ.items()}


def cycle_heads(
    seq: Sequence[str], roots: Sequence[str], *, min_support: int, min_edge_ratio: float
) -> list[str]:
    """Targets of DFS back-edges, in discovery order (iterative DFS, most frequent successor first)."""
    succ = _filtered_edges(seq, min_support=min_support, min_edge_ratio=min_edge_ratio)
    heads: list[str] = []
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, idx = stack[-1]
            nxt = succ.get(node, [])
            if idx < len(nxt):
                stack[-1] = (node, idx + 1)
                child = nxt[idx]
                st = state.get(child)
                if st is None:
                    state[child] = 1
                    stack.append((child, 0))
                elif st == 1 and child not in heads:
                    heads.append(child)
            else:
                state[node] = 2
                stack.pop()
    return heads


def segment_at(seq: Sequence[str], starts: set[str], *, min_length: int) -> list[list[str]]:
    """Cut before every start action, unless the open segment is still shorter than `min_length`."""
    segments: list[list[str]] = []
    cur: list[str] = []
    for label in seq:
        if label in starts and len(cur) >= min_length:
            segments.append(cur)
            cur = [label]
        elif cur or label in starts:
            cur.append(label)
    if cur:
        segments.append(cur)
    return segments


def body(seq: Sequence[str], start: str, starts: set[str], *, min_length: int, share: float) -> set[str]:
    """Actions present in at least `share` of the segments that begin with `start`."""
    segs = [s for s in segment_at(seq, starts, min_length=min_length) if s and s[0] == start]
    if not segs:
        return set()
    presence: Counter[str] = Counter()
    for s in segs:
        presence.update(set(s))
    return {label for label, n in presence.items() if n >= share * len(segs)}


#: Mean similarity (Dice on the LCS) of consecutive segments a preferred start must begin.
COHERENCE = 0.5


def _coherent(seq: Sequence[str], start: str, min_length: int) -> bool:
    """Do the segments cut before `start` alone resemble each other (up to 20 consecutive pairs)?"""
    from rote.discovery.align import Masks

    segs = [sg for sg in segment_at(seq, {start}, min_length=min_length) if sg and sg[0] == start]
    pairs = list(itertools.pairwise(segs))[:20]
    if not pairs:
        return False
    total = sum(Masks(a).similarity(b) for a, b in pairs)
    return total / len(pairs) >= COHERENCE


def _bodies(segs: Sequence[list[str]], starts: Sequence[str], share: float) -> dict[str, set[str]]:
    """`body` of each start, from segments already cut."""
    presence: dict[str, Counter[str]] = {s: Counter() for s in starts}
    n: Counter[str] = Counter()
    for seg in segs:
        if seg and seg[0] in presence:
            n[seg[0]] += 1
            presence[seg[0]].update(set(seg))
    return {s: {x for x, c in presence[s].items() if c >= share * n[s]} for s in starts if n[s]}


def _chops(
    segs: Sequence[list[str]], head: str, starts: set[str], *, entered_from_many: bool = False
) -> bool:
    """Does cutting at `head` cut the known routines' instances short?

    Segments of a known routine that now end because `head` follows are compared with those that end
    because another of its instances follows. A new routine's start leaves them as long as before, ending
    on the actions whole instances end on; a step inside the routine leaves a prefix only. When `head`
    *always* follows, the two are one routine.

    `entered_from_many`: `head` follows no single action most of the time. A step inside a routine is
    entered from the step before it; a routine's first action from wherever the previous instance (of any
    routine) ended. Then only where the cut segments end is judged, not their length: the uncut ones are
    longer because the other routines' instances are still glued onto them.
    """
    cut: list[int] = []
    whole: list[int] = []
    cut_ends: list[str] = []
    whole_ends: set[str] = set()
    for cur, nxt in itertools.pairwise(segs):
        if not cur or cur[0] not in starts:
            continue
        if nxt[0] == head:
            cut.append(len(cur))
            cut_ends.append(cur[-1])
        else:
            whole.append(len(cur))
            whole_ends.add(cur[-1])
    if not cut:
        return False
    if not whole:
        return True
    if sum(e in whole_ends for e in cut_ends) < 0.5 * len(cut_ends):
        return True  # the cut segments stop where whole instances never stop: a prefix, not an instance
    if entered_from_many:
        return False
    c, w = _median(cut), _median(whole)
    return c < 0.75 * w or c <= w - 2


#: A label entered from no single predecessor in at least this share of its occurrences is where
#: instances meet (see `_chops`).
ENTRY_SHARE = 0.75


def _entered_from_many(preds: Counter[str] | None) -> bool:
    """Is no single predecessor behind `ENTRY_SHARE` of these predecessor counts?"""
    if not preds:
        return False
    return preds.most_common(1)[0][1] < ENTRY_SHARE * preds.total()


def _median(xs: Sequence[int]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def _stale_anchor(seq: Sequence[str], starts: Sequence[str], *, min_length: int, body_share: float) -> bool:
    """Does the first known start (the anchor, while it is still seen) begin only fragments now?

    The anchor is the one start never tested: the first frequent action (or interruption start) of the
    window it was estimated on, at the end of the warm-up or when the starts were last estimated afresh
    (or, when a refit dropped the anchor because that shortened the window's description,
    `mdl.improve_starts`, the start accepted after it, which was tested when accepted).
    When the first instances' own first action was still too rare to count, it is a step inside the
    routine, often a hub such as ``copy``; the known starts found after it are rotations of the wrong
    cycle. With a window's more evidence, the segments a wrong anchor begins share fewer than
    `min_length` actions: the test every other start passes, with the starts accepted before it, when it
    is accepted. None was accepted before the anchor, so it cuts the stream alone here (a later start
    that cuts the anchor's instances short is that start's fault, not the anchor's).
    """
    anchor = starts[0]
    return len(body(seq, anchor, {anchor}, min_length=min_length, share=body_share)) < min_length


#: An anchor with at most this share of its predecessors outside its own body is entered only from inside
#: its routine: a step of it (`_entry_anchor`).
STEP_ENTRY = 0.05
#: The action replacing such an anchor is entered from elsewhere in more than this share of its occurrences.
ENTRY_MIN = 0.35
#: A predecessor in fewer than this share of a candidate's segments (and at least half) still counts as
#: elsewhere when it ends a block of actions glued onto those segments (`_glued_end`). Another routine up to
#: about twice as frequent as the candidate's sits between two of its instances in r / (1 + r) <= 2/3 of
#: them; a step of the candidate's own routine is in nearly all.
GLUED_PRESENCE = 2 / 3
#: ... a block of at least this share of the actions in 80% of the candidate's segments (and `min_length`).
GLUED_BLOCK = 0.25


def _glued_end(own: Sequence[list[str]], q: str, min_length: int) -> bool:
    """Does `q` end another routine's instances glued onto these segments (all begun by one action)?

    Until a second routine's start is accepted, its instances stay glued onto the segments of the routine
    before them: in about half of those segments (two routines at random), each time with all of its
    actions. So `q` ends such a routine if many actions are present almost exactly in the segments `q` is
    in: in 80% of those and in at most 20% of the others, at least `GLUED_BLOCK` of the segments' common
    actions. An optional step of the candidate's own routine (a branch) brings one or two actions along.
    """
    with_q = [i for i, s in enumerate(own) if q in s]
    if not with_q or len(with_q) == len(own):
        return False
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    where = set(with_q)
    for i, s in enumerate(own):
        (inside if i in where else outside).update(set(s))
    n_in, n_out = len(with_q), len(own) - len(with_q)
    block = sum(1 for x, c in inside.items() if c >= 0.8 * n_in and outside[x] <= 0.2 * n_out)
    common = sum(1 for x in inside.keys() | outside.keys() if inside[x] + outside[x] >= 0.8 * len(own))
    return block >= max(min_length, GLUED_BLOCK * common)


def _entry_anchor(
    seq: Sequence[str],
    anchor: str,
    preds: _Preds,
    *,
    min_support: int,
    min_length: int,
    body_share: float,
    glued: bool = False,
) -> str | None:
    """The action to anchor on instead of `anchor` when `anchor` is a step inside a routine, else None.

    A routine's first action is entered from wherever the previous instance (of any routine) or a noise
    action ended; a step from the step before it. Cutting the stream at the anchor alone, as when it was
    chosen: if (almost) every predecessor of the anchor is in its own body, it is entered only from its
    own routine, and the segments it begins are rotated instances. It is replaced by the action of the same
    routine (one in whose segments the anchor is, once in most, whose segments share `min_length` actions)
    entered most often from elsewhere, if in more than `ENTRY_MIN` of its occurrences: from an action that is
    in fewer than half of its segments (not a step of its routine) and is followed by it in fewer than half
    of its own occurrences (the end of whatever came before, not the step before it on a branch, which
    leads to it whenever taken). In a stream of one routine without noise little is entered from
    elsewhere (the anchor stays); the merge points of its branches are entered from branch steps.

    `glued`: the end of another routine counts as elsewhere also when it is in half to two thirds of the
    candidate's segments, if it ends a block glued onto them (`_glued_end`): with two routines at random and
    noise, the other routine's last action is in about half of them, and the threshold of one half alone
    decided such mixes by chance (docs/discovery.md: SR+RT seeds). The candidate then needs the
    evidence the anchor needs, 2 x `min_support` occurrences.
    """
    p = preds.of(anchor)
    if not p or p.total() < 2 * min_support:
        return None
    own_body = body(seq, anchor, {anchor}, min_length=min_length, share=body_share)
    if sum(n for q, n in p.items() if q not in own_body) > STEP_ENTRY * p.total():
        return None
    follows = preds.follows()
    best, best_share = None, ENTRY_MIN
    for y in dict.fromkeys(seq):
        py = preds.of(y)
        if y == anchor or not py or py.total() < (2 if glued else 1) * min_support:
            continue
        entries = {q: k for q, k in py.items() if k < 0.5 * follows[q]}
        if sum(entries.values()) <= best_share * py.total():
            continue  # not entered from elsewhere often enough, whatever its segments hold
        own = [s for s in segment_at(seq, {y}, min_length=min_length) if s and s[0] == y]
        if not own or sum(s.count(y) > 1 for s in own) > 0.5 * len(own):
            continue
        presence: Counter[str] = Counter()
        for s in own:
            presence.update(set(s))
        n = len(own)
        if presence[anchor] < body_share * n:
            continue  # the anchor is not a step of the routine `y` begins
        if sum(c >= body_share * n for c in presence.values()) < min_length:
            continue
        share = (
            sum(
                k
                for q, k in entries.items()
                if presence[q] < 0.5 * n
                or (glued and presence[q] < GLUED_PRESENCE * n and _glued_end(own, q, min_length))
            )
            / py.total()
        )
        if share > best_share:
            best, best_share = y, share
    return best


def estimate_starts(
    labels: Sequence[str],
    *,
    known: Sequence[str] = (),
    min_support: int = 3,
    min_edge_ratio: float = 0.05,
    min_length: int = 3,
    body_share: float = 0.8,
    prefer: Sequence[str] = (),
    trial_bodies: bool = False,
    coherent_prefer: bool = False,
    retest: bool = False,
    entry_anchor: bool = False,
    entry_glued: bool = False,
    loop_rounds: int = 0,
    loop_share: float = 0.8,
) -> list[str]:
    """Routine start actions of a stream; `known` starts (from earlier windows) are kept as roots.

    `prefer`: candidates tried before the cycle heads (actions seen to begin interruptions), under the same
    acceptance tests as every other candidate. `retest`: the known starts after the anchor are judged again
    on this window first, and those found inside a routine known before them are dropped (`_inside`).
    `entry_anchor`: on a window after the first, an anchor that is a step inside a routine is replaced by
    the action that routine is entered through (`_entry_anchor`, with `entry_glued` as its `glued`).
    `loop_rounds`: a candidate that begins rounds of one routine inside a known routine's segments (a
    routine done once per row within a session) skips the body and cut tests (`_loops`; 0: off).
    """
    freq = frequent_labels(labels, min_support)
    seq = [label for label in labels if label in freq]
    if not seq:
        return list(known)
    preferred = [p for p in prefer if p in freq]
    if coherent_prefer:
        # an action that opens threads begins *something*; it begins a routine only if what it begins
        # looks alike each time (unrelated actions strung together in a burst open threads too)
        preferred = [p for p in preferred if _coherent(seq, p, min_length)]
    anchor = preferred[0] if preferred else seq[0]
    starts: list[str] = [s for s in known if s in freq]
    if starts and _stale_anchor(seq, starts, min_length=min_length, body_share=body_share):
        starts = []  # re-anchor: estimate again from this window, as at the end of the warm-up
    preds = _Preds(seq)
    if entry_anchor and known:
        entry = _entry_anchor(
            seq,
            starts[0] if starts else anchor,
            preds,
            min_support=min_support,
            min_length=min_length,
            body_share=body_share,
            glued=entry_glued,
        )
        if entry is not None:
            starts = [entry]  # re-anchor where the routine is entered; the other starts are estimated afresh
    starts = starts or [anchor]
    if retest and len(starts) > 1:
        # each start accepted after the anchor, in the order it was accepted, with the ones kept before it
        kept = starts[:1]
        bodies = _bodies(segment_at(seq, set(kept), min_length=min_length), kept, body_share)
        for head in starts[1:]:
            if not _inside(
                seq,
                head,
                kept,
                bodies,
                preds,
                min_length=min_length,
                body_share=body_share,
                trial_bodies=trial_bodies,
            ):
                kept.append(head)
                bodies = _bodies(segment_at(seq, set(kept), min_length=min_length), kept, body_share)
        starts = kept
    roots = [*starts, seq[0]] if seq[0] not in starts else list(starts)
    accepted = set(starts)
    bodies = _bodies(segment_at(seq, accepted, min_length=min_length), starts, body_share)
    heads = list(preferred)
    heads += [
        h
        for h in cycle_heads(seq, roots, min_support=min_support, min_edge_ratio=min_edge_ratio)
        if h not in heads
    ]
    # A routine entered through an action shared with another routine (both end on "OK") has no back-edge
    # of its own; every other frequent action, in order of first appearance, is a candidate too.
    seen = set(heads)
    for label in seq:
        if label not in seen:
            seen.add(label)
            heads.append(label)
    current: list[list[str]] | None = None  # the segments the accepted starts cut, when a loop is asked
    for head in heads:
        if head in accepted:
            continue
        trial = accepted | {head}
        looped = False
        if _in_body(
            seq, head, starts, bodies, min_length=min_length, body_share=body_share, trial_bodies=trial_bodies
        ):
            if not loop_rounds:
                continue
            if current is None:
                current = segment_at(seq, accepted, min_length=min_length)
            looped = _loops(current, head, rounds=loop_rounds, share=loop_share, min_round=2 * min_length)
            if not looped:
                continue
        head_body = body(seq, head, trial, min_length=min_length, share=body_share)
        if len(head_body) < min_length:
            continue  # cutting there leaves only fragments: not a routine of its own
        segs = segment_at(seq, trial, min_length=min_length)
        own = [s for s in segs if s and s[0] == head]
        if sum(s.count(head) > 1 for s in own) > 0.5 * len(own):
            continue  # a start begins one instance; a step repeated inside an instance does not
        if sum(any(x in accepted for x in s[1:]) for s in own) > 0.5 * len(own):
            continue  # its segments run on into a known start: it ends a routine rather than begins one
        if not looped and _chops(segs, head, accepted, entered_from_many=_entered_from_many(preds.of(head))):
            continue
        accepted = trial
        starts.append(head)
        current = segs
        bodies = _bodies(current, starts, body_share)
    return starts


def _loops(segs: Sequence[list[str]], head: str, *, rounds: int, share: float, min_round: int) -> bool:
    """Does `head` begin rounds of one routine inside most segments that hold it: at least `rounds` of
    them, from the segment's first quarter on (what comes before is a short set-up such as a log-in), alike
    and at least `min_round` labels long (`_alike_rounds`)? A session that logs in once and then does an
    invoice per row has its invoice start in the body of the log-in's routine, so the body test alone
    would keep the whole session as one routine."""
    holding = [s for s in segs if head in s]
    looping = sum(
        s.count(head) >= rounds and s.index(head) <= len(s) // 4 and _alike_rounds(s, head, min_round)
        for s in holding
    )
    return len(holding) >= 3 and looping > share * len(holding)


def _alike_rounds(seg: Sequence[str], head: str, min_round: int) -> bool:
    """Are the rounds of `seg` that begin at `head` one routine done again (half of them share >= 60% of
    their labels with the first), each at least `min_round` labels, rather than a table's lines filled one
    by one (four steps a line: Leno's reimbursement form)?"""
    cuts = [i for i, x in enumerate(seg) if x == head]
    rounds = [set(seg[a:b]) for a, b in itertools.pairwise(cuts)]
    if not rounds or _median([len(r) for r in rounds]) < min_round:
        return False
    first = rounds[0]
    alike = sum(len(r & first) >= 0.6 * len(r | first) for r in rounds[1:])
    return alike >= 0.5 * (len(rounds) - 1)


class _Preds:
    """Predecessor counts of each label of a sequence, counted when first asked for."""

    def __init__(self, seq: Sequence[str]) -> None:
        self._seq = seq
        self._preds: dict[str, Counter[str]] | None = None

    def of(self, label: str) -> Counter[str] | None:
        if self._preds is None:
            self._preds = {}
            for a, b in itertools.pairwise(self._seq):
                c = self._preds.get(b)
                if c is None:
                    c = self._preds[b] = Counter()
                c[a] += 1
        return self._preds.get(label)

    def follows(self) -> Counter[str]:
        """How many times each label is followed by another (its occurrences but the last action's)."""
        return Counter(self._seq[:-1])


def _in_body(
    seq: Sequence[str],
    head: str,
    starts: Sequence[str],
    bodies: dict[str, set[str]],
    *,
    min_length: int,
    body_share: float,
    trial_bodies: bool,
) -> bool:
    """Is `head` in the body of a routine begun by one of `starts` (their `bodies` while they cut)?"""
    if not any(head in b for b in bodies.values()):
        return False
    if not trial_bodies:
        return True
    # in the body of a known routine while only the known starts cut the stream; is it still when this one
    # cuts too? (a routine glued onto another's instances is in their bodies until its own start separates
    # them; a step of the known routine stays in its body)
    tsegs = segment_at(seq, {*starts, head}, min_length=min_length)
    return any(head in b for b in _bodies(tsegs, starts, body_share).values())


def _inside(
    seq: Sequence[str],
    head: str,
    starts: Sequence[str],
    bodies: dict[str, set[str]],
    preds: _Preds,
    *,
    min_length: int,
    body_share: float,
    trial_bodies: bool,
) -> bool:
    """Is a start accepted on an earlier window (after `starts`) a step inside one of their routines?

    Both of two acceptance tests must fail on this window: it is in the body of a routine begun by one of
    `starts`, and cutting there cuts that routine's instances short (`_chops`). The body test alone does not
    tell a step from the start of a routine whose instances are glued onto the known one's segments (the
    known routine's segments hold it too, when they are mostly followed by one of its instances); a step
    also leaves the known routine's segments ending where whole instances never end.
    """
    if not _in_body(
        seq, head, starts, bodies, min_length=min_length, body_share=body_share, trial_bodies=trial_bodies
    ):
        return False
    trial = {*starts, head}
    segs = segment_at(seq, trial, min_length=min_length)
    return _chops(segs, head, set(starts), entered_from_many=_entered_from_many(preds.of(head)))
