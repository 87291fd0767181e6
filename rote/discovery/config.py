"""Discovery settings. Defaults suit one person's desktop stream; docs/discovery.md explains each choice."""

from __future__ import annotations

from dataclasses import dataclass, field

from rote.discovery.abstraction import ActionAbstraction
from rote.discovery.scoring import ScoreConfig


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    abstraction: ActionAbstraction = field(default_factory=ActionAbstraction)
    #: Occurrences before a routine (and an action, and a transition) counts as repeated.
    min_support: int = 3
    #: Shortest routine worth reporting, in actions.
    min_length: int = 3
    #: Events buffered before the first estimate of where routines start.
    warmup_events: int = 400
    #: Re-estimate routine starts every this many events ...
    refit_every: int = 2000
    #: ... over this many recent labels, in thread order (what the start estimator sees).
    history_events: int = 1500
    #: A candidate start is refused when present in this share of a known routine's segments (its body).
    start_body_share: float = 0.8
    start_trial_bodies: bool = False
    #: Interruption starts are preferred only if the segments they begin resemble each other.
    start_coherent_prefer: bool = True
    #: At each refit the starts accepted after the anchor are judged again, in the order they were accepted,
    #: on the new window: one now in the body of a routine known before it that also cuts that routine's
    #: instances short is a step of it (accepted on a warm-up's few instances) and is dropped.
    start_retest: bool = True
    #: At each refit an anchor entered only from inside its own routine (a step of it) is replaced by the
    #: action that routine is entered through from elsewhere, if one is (`segmentation._entry_anchor`).
    start_entry_anchor: bool = True
    #: ... counting as "elsewhere" also the last action of another routine glued onto half to two thirds of
    #: the candidate's segments (`segmentation._glued_end`).
    start_entry_glued: bool = True
    #: A routine done once per row inside a session (log in once, then an invoice per row): a start is
    #: accepted inside a known routine's body when, in more than `start_loop_share` of the segments holding
    #: it, it begins at least `start_loop_rounds` rounds (0: off) that fill the segment from its first
    #: quarter on, are alike (label-set Jaccard >= 0.6 with the first, for half of them) and are at least
    #: two routine lengths long (a table filled line by line, four steps a line, is a step group, not a
    #: routine). A new user's German export: instance recall 0.0 -> 0.82 (`segmentation._loops`).
    start_loop_rounds: int = 3
    start_loop_share: float = 0.8
    #: When starts are dropped at a refit, the kept events of what was cut at them are joined with the
    #: segments next to them in time and cut again at the new starts, instead of being forgotten
    #: (`StartKeeper.unanchor`, refit.py).
    start_recut_unanchored: bool = True
    #: At each refit, starts are dropped (of the estimate, or of the starts known before) while that
    #: shortens the window's description, if in all by at least this share (`mdl.improve_starts`: each
    #: routine's prototype plus each segment's excess over it); 0: off. SR+RT seeds 1-120: 98 -> 109.
    start_description_gain: float = 0.05
    #: A segment longer than this is closed (someone stopped doing routines).
    max_segment_events: int = 300
    #: An idle gap longer than this closes a thread and its open segment.
    max_gap_seconds: float = 1800.0
    #: Out-of-order tolerance: events are held this long (event time) before being processed.
    lateness_seconds: float = 5.0
    #: Event ids remembered for de-duplication: an event redelivered within this many newer events is
    #: recognised as a duplicate (older ones are dropped all the same, counted as late); see `dedupe.py`.
    dedupe_window: int = 320
    #: Events held for reordering at most; beyond this the oldest is processed (a burst with one timestamp).
    max_held: int = 256
    #: Longer values are kept as a prefix plus a digest of the whole (equal values stay equal).
    max_value_chars: int = 200
    #: Labels whose statistics are kept (and their characters); beyond this the ones seen once are
    #: forgotten (then a decay).
    max_labels: int = 256
    max_label_chars: int = 4000
    #: Transitions (first order, second order) kept; beyond this the ones seen once are forgotten.
    max_pairs: int = 512
    max_triples: int = 768
    # ---------------------------------------------------------------- threads (interleaved work)
    #: An event continues a thread when it follows the thread's last action with at least this share of
    #: that action's successors in the stream; otherwise it opens a new thread (an interruption).
    continue_share: float = 0.1
    #: ... or when it follows it at least this many times more often than it occurs at all (a rare branch
    #: of a routine; an interleaving switch has a lift near 1), seen at least twice.
    continue_lift: float = 5.0
    #: ... and in any case at least this many times more often than it occurs at all.
    continue_min_lift: float = 0.0
    #: When no thread continues an event directly, one that continues it across one step (the event came
    #: one step early or late: loggers stamp some events late) takes it instead of a new thread.
    route_skips: bool | str = True
    #: ... if the two transitions it spans are this likely together (a routine's own order is).
    skip_share: float = 0.3
    #: An action seen at most `min_support` times (no transitions of its own yet) joins the most recently
    #: continued thread instead of opening one.
    rare_joins: bool = True
    #: ... and so does an action that followed the thread's last action before (but not twice), unless it
    #: is known to begin interruptions.
    weak_joins: bool = False
    #: Threads open at once; the least recently active is closed beyond this.
    max_threads: int = 6
    #: A thread not continued for this many events is closed (its instance is over).
    thread_idle_events: int = 60
    #: A label that opened a new thread in at least this share of its occurrences starts routines.
    interrupt_start_share: float = 0.3
    #: Transition counts are halved every this many events (recent behaviour weighs more; bounded). Not
    #: much oftener: a rare branch of a routine (seen once in a few hundred instances) must keep the two
    #: sightings that let it continue its thread (Bosco log9, with `absorb_other_similarity`: 0.939 at 4,000,
    #: 0.955 at 8,000).
    decay_every: int = 8000
    # ---------------------------------------------------------------- variants
    #: LCS similarity at which a segment counts as a noisy instance of a known variant if it is at most one
    #: action apart each way (one extra, missing or other step) ...
    absorb_similarity: float = 0.8
    #: ... and whatever it adds or lacks (0.9: one other step of 15 is noise, two are another variant; at
    #: 0.8 Bosco log9's rare B2 variants, two steps apart, were all absorbed into their common neighbours
    #: and never found).
    absorb_other_similarity: float = 0.9
    #: LCS similarity at which pending segments group into a new variant.
    cluster_similarity: float = 0.8
    #: A sequence absorbed into a variant becomes its own variant at this share of the variant's instances
    #: (or `promote_min` occurrences, whichever comes first).
    promote_share: float = 0.15
    promote_min: int = 10
    #: A variant is split on an action present in between this share and 1 - this share of its instances
    #: (judged on the label sequences of its `split_keys` most recent occurrences).
    split_share: float = 0.15
    split_keys: int = 12
    #: Instances kept per variant (for parameters, splits and the candidate's `instances`): the automation
    #: generator infers a routine from three and tests it on the rest.
    keep_instances: int = 4
    #: Events in kept instances over all of a user's variants (the state budget: a kept event costs about
    #: 30 bytes encoded, most of it its event id); the least supported variants give theirs up first.
    max_kept_events: int = 200
    #: Instances put into each emitted candidate.
    candidate_instances: int = 6
    #: Segments waiting to form a new variant ...
    max_pending: int = 40
    #: ... of which the newest this many keep their events (the older ones only their labels and times).
    pending_with_events: int = 1
    #: Variants kept per user; the least recently seen are evicted beyond this.
    max_variants: int = 40
    #: Variants not seen for this long (event time) are evicted at the next refit.
    variant_ttl_seconds: float = 60 * 86400.0
    #: A variant is first emitted as a candidate once seen this often (a routine the automation generator can
    #: learn from and test: three instances to infer it, more to check it; fragments rarely get this far).
    emit_min_occurrences: int = 6
    #: Re-emit a candidate when its occurrences grew by this share since the last emission (or its steps
    #: changed), at most once per `emit_every_events` events of the user (everything grown at a flush):
    #: not on every occurrence, so neither the candidates topic nor the worker is flooded (a 50-step
    #: candidate takes milliseconds to build); the latest version is what counts.
    emit_growth: float = 0.1
    emit_every_events: int = 10000
    #: Variants whose action sets overlap at least this much (Jaccard) are variants of one routine.
    family_similarity: float = 1.0
    #: ... or whose smaller action set lies at least this much inside the larger one.
    family_containment: float = 1.01
    # ---------------------------------------------------------------- state budget
    #: Encoded bytes per user the state must stay under, whatever the history (issue 15: 20 kB).
    state_budget_bytes: int = 20 * 1024
    #: Every this many characters of payload taken in (ids, labels, values: ~25 events of the bundled log,
    #: fewer when events are long) the size is estimated (from the last measured size and the events held
    #: since); it is measured exactly when the estimate nears the budget, every `budget_measure_every`
    #: events and at a flush. Above `shed_at` of the budget, kept instances, pending segments and then the
    #: least useful variants are given up until it is under `shed_to` of the budget (`budget.py`).
    budget_check_bytes: int = 1024
    budget_measure_every: int = 8192
    shed_at: float = 0.92
    shed_to: float = 0.8
    scoring: ScoreConfig = field(default_factory=ScoreConfig)
