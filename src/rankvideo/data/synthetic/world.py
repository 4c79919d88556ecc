"""The news world of the embedded benchmark: events (a kind of event in a place) and what people
say about them.

MultiVENT 2.0 is event-centric: many videos cover the same event, and a query names the event
and then asks for something specific. The embedded benchmark copies that structure so that a
text first stage finds the right event from metadata and speech but cannot tell which of the
event's videos shows what the query asks for; that is the reranker's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each kind of event has spoken details (what a narrator talks about) and words that appear on
# screen (tickers, signs). Details are short noun phrases so BM25 can match them.
EVENT_KINDS: dict[str, dict[str, list[str]]] = {
    "flood": {
        "details": ["rescue boats", "submerged cars", "sandbag walls", "evacuation shelters", "burst riverbanks", "rooftop rescues"],
        "screen": ["FLOOD", "EVACUATE", "RESCUE"],
    },
    "wildfire": {
        "details": ["water bombers", "smoke plumes", "burned hillsides", "firefighter crews", "evacuated villages", "ember storms"],
        "screen": ["FIRE", "EVACUATE", "DANGER"],
    },
    "protest": {
        "details": ["riot police", "banner slogans", "tear gas", "student marchers", "union leaders", "blocked avenues"],
        "screen": ["PROTEST", "STRIKE", "JUSTICE"],
    },
    "festival": {
        "details": ["street dancers", "fireworks display", "food stalls", "costume contest", "brass bands", "lantern release"],
        "screen": ["FESTIVAL", "MUSIC", "PARTY"],
    },
    "earthquake": {
        "details": ["collapsed buildings", "aftershock warnings", "search dogs", "cracked highways", "field hospitals", "tremor magnitude"],
        "screen": ["QUAKE", "ALERT", "RESCUE"],
    },
    "marathon": {
        "details": ["finish line", "elite runners", "water stations", "wheelchair racers", "course record", "cheering crowds"],
        "screen": ["MARATHON", "FINISH", "RECORD"],
    },
    "storm": {
        "details": ["fallen trees", "power outages", "storm surge", "wind gusts", "flooded basements", "hail damage"],
        "screen": ["STORM", "WARNING", "ALERT"],
    },
    "election": {
        "details": ["polling stations", "ballot counting", "campaign rally", "exit polls", "voter queues", "victory speech"],
        "screen": ["VOTE", "ELECTION", "RESULTS"],
    },
    "concert": {
        "details": ["encore songs", "light show", "sold out arena", "guest singer", "stage diving", "acoustic set"],
        "screen": ["LIVE", "CONCERT", "TOUR"],
    },
    "parade": {
        "details": ["marching bands", "decorated floats", "military veterans", "confetti showers", "giant balloons", "horse riders"],
        "screen": ["PARADE", "HOLIDAY", "CELEBRATE"],
    },
    "strike": {
        "details": ["picket lines", "closed factories", "wage demands", "train cancellations", "union vote", "empty platforms"],
        "screen": ["STRIKE", "UNION", "CLOSED"],
    },
    "eruption": {
        "details": ["lava flows", "ash clouds", "grounded flights", "evacuation buses", "glowing crater", "volcanologists"],
        "screen": ["VOLCANO", "ASH", "DANGER"],
    },
}

PLACES = [
    "Valencia", "Lisbon", "Jakarta", "Manila", "Santiago", "Nairobi", "Osaka", "Seoul",
    "Lagos", "Kyiv", "Cairo", "Lima", "Busan", "Porto", "Quito", "Hanoi", "Tbilisi", "Accra",
]

GENERIC_SCREEN = ["BREAKING", "UPDATE", "NEWS"]


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: str
    place: str

    @property
    def name(self) -> str:
        return f"{self.kind} in {self.place}"


def sample_events(rng: np.random.Generator, num_events: int) -> list[Event]:
    """Distinct (kind, place) pairs. Kinds and places repeat across events on purpose: two
    floods in different cities, or a flood and a storm in the same city, confuse a lexical
    first stage the way real news collections do."""
    pairs = [(k, p) for k in EVENT_KINDS for p in PLACES]
    if num_events > len(pairs):
        raise ValueError(f"data.num_events={num_events} exceeds the {len(pairs)} distinct events the world defines")
    picks = rng.choice(len(pairs), size=num_events, replace=False)
    return [Event(event_id=f"E{i:03d}", kind=pairs[int(j)][0], place=pairs[int(j)][1]) for i, j in enumerate(picks)]
