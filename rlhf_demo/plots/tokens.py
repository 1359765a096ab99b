"""The token inspector's views: one update of a run, token by token (issue 26). Dicts in, HTML out.

The dicts are what ``rlhf_demo.inspector.inspect_run`` returns (and ``inspect RUN --json`` prints);
which view draws one is read from its shape, not from an algorithm's name:

- **episode** (PPO, ``tokens``): the response's tokens coloured by their (whitened) GAE advantage;
- **pair** (DPO, ``chosen`` / ``rejected``): both completions side by side, each token coloured by its
  implicit reward β·(log π − log π_ref), with their sums, the margin and σ(margin);
- **group** (GRPO, ``group``): the G completions of one prompt side by side, each coloured by its
  group-relative advantage (the same for all its tokens), with the group's mean and std; a token's
  formula panel adds its ratio π/π_old and its k3 term.

Colours are one diverging scale, symmetric around 0 (blue = pushed up, orange = pushed down, white = 0,
full colour = the largest |value| on the view); each token is a ``<span data-index=KEY>`` (KEY as in
``token_choices``) that the UI makes clickable. ``formula_html(data, KEY)`` is the formula panel of one
token with its own numbers substituted (UNIPO's formula panel, poloclub/unipo). All text is escaped;
spaces and newlines are shown as ␣ and ↵. No torch, no gradio here.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from rlhf_demo.plots.decoding import show_token

UP_RGB, DOWN_RGB = (67, 147, 195), (224, 130, 20)
"""Full-scale colours: blue = pushed up, orange = pushed down (colour-blind safe; dark text stays readable)."""
UP, DOWN, ZERO = "tok-up", "tok-down", "tok-zero"
"""A token span's class by the sign of its value."""
UP_LABEL, DOWN_LABEL = "pushed up", "pushed down"


# ---------------------------------------------------------------------------------------------- maths
@dataclass(frozen=True)
class ClipTerms:
    """The PPO-clip objective of one token, L = min(r·A, clip(r, 1−ε, 1+ε)·A) (Schulman et al. 2017,
    eq. 7; TRL's ``pg_losses`` / ``pg_losses2`` are −r·A and −clip(r)·A, the loss their max)."""

    ratio: float
    advantage: float
    eps: float
    clipped_ratio: float
    """clip(r, 1−ε, 1+ε)."""
    unclipped: float
    """r·A."""
    clipped: float
    """clip(r, 1−ε, 1+ε)·A."""
    objective: float
    """min(r·A, clip(r)·A)."""
    branch: str
    """"unclipped" (r·A is smaller: the gradient flows), "clipped" (the clipped term is smaller: it is
    constant in θ, no gradient through this token: the clip is active) or "equal" (r inside the range)."""

    @property
    def pushes(self) -> str:
        """Where the update moves log π of this token: "up" (A > 0), "down" (A < 0) or "none" (clipped, A = 0)."""
        if self.branch == "clipped" or self.advantage == 0:
            return "none"
        return "up" if self.advantage > 0 else "down"


def clip_terms(ratio: float, advantage: float, eps: float) -> ClipTerms:
    """min(r·A, clip(r, 1−ε, 1+ε)·A) and which branch of the min won."""
    r, a = float(ratio), float(advantage)
    rc = min(max(r, 1.0 - eps), 1.0 + eps)
    unclipped, clipped = r * a, rc * a
    branch = "unclipped" if unclipped < clipped else "clipped" if clipped < unclipped else "equal"
    return ClipTerms(r, a, float(eps), rc, unclipped, clipped, min(unclipped, clipped), branch)


def kl_share(kl: float, beta: float, reward: float) -> tuple[float, float, float]:
    """(−β·kl, the rest of the token's reward, the KL penalty's share |−β·kl| / (|−β·kl| + |rest|)).
    The token reward is r_t = −β·kl_t, plus the sequence score s on the last token (Ziegler et al. 2019;
    TRL's ``rewards[..., last] += scores``): the rest is s on the last token and 0 elsewhere."""
    penalty = -float(beta) * float(kl)
    rest = float(reward) - penalty
    total = abs(penalty) + abs(rest)
    return penalty, rest, (abs(penalty) / total if total > 0 else 0.0)


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^(−x)), stable for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def colour(value: float, scale: float) -> tuple[str, str]:
    """(class, CSS background) of ``value`` on the diverging scale ±``scale``: white at 0, full colour at
    |value| ≥ scale, blue above 0 and orange below."""
    v = float(value or 0.0)
    if v == 0 or not math.isfinite(v):
        return ZERO, "rgb(255,255,255)"
    t = min(1.0, abs(v) / scale) if scale > 0 else 1.0
    end = UP_RGB if v > 0 else DOWN_RGB
    rgb = ",".join(str(round(255 + (c - 255) * t)) for c in end)
    return (UP if v > 0 else DOWN), f"rgb({rgb})"


# ---------------------------------------------------------------------------------------------- items
def view_kind(data: dict) -> str:
    """ "group" (GRPO), "pair" (DPO) or "episode" (PPO), from the dict's shape."""
    return "group" if "group" in data else "pair" if "chosen" in data else "episode"


def _items(data: dict) -> list[tuple[str, str, dict, float]]:
    """(KEY, where, token record, its colour value) of every token on the view."""
    kind = view_kind(data)
    if kind == "episode":
        return [(str(i), "", t, _num(t.get("advantage"))) for i, t in enumerate(data.get("tokens") or [])]
    if kind == "pair":
        sides = [(side, data.get(side) or {}) for side in ("chosen", "rejected")]
        return [(f"{s}:{i}", s, t, _num(t.get("implicit_reward"))) for s, d in sides for i, t in enumerate(d.get("tokens") or [])]
    return [
        (f"{g}:{i}", str(g), t, _num(c.get("advantage")))
        for g, c in enumerate(_completions(data))
        for i, t in enumerate(c.get("tokens") or [])
    ]


def _completions(data: dict) -> list[dict]:
    """GRPO's completions of the group (``data["group"]["completions"]``)."""
    return (data.get("group") or {}).get("completions") or []


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _f(x, digits: int = 3, sign: bool = True) -> str:
    if x is None:
        return "—"
    try:
        return f"{float(x):{'+' if sign else ''}.{digits}f}"
    except (TypeError, ValueError):
        return html.escape(str(x))


def _where(kind: str, where: str) -> str:
    return f"{where} " if kind == "pair" else f"#{where} " if kind == "group" else ""


def token_choices(data: dict) -> list[tuple[str, str]]:
    """(label, KEY) of every token, for a token picker: "3: ␣great (A +0.512)"."""
    kind = view_kind(data)
    name = {"episode": "A", "pair": "β·Δlogp", "group": "A"}[kind]
    return [
        (f"{_where(kind, where)}{key.rsplit(':', 1)[-1]}: {show_token(str(t.get('token', '')))} ({name} {_f(v)})", key)
        for key, where, t, v in _items(data)
    ]


def default_key(data: dict) -> str | None:
    """The token with the largest |value| on the view (the one pushed hardest), or None."""
    items = _items(data)
    return max(items, key=lambda it: abs(it[3]))[0] if items else None


def _scale(items) -> float:
    return max((abs(v) for *_, v in items), default=0.0)


# ---------------------------------------------------------------------------------------------- strips
def _span(key: str, t: dict, value: float, scale: float, tip: str, selected: str | None) -> str:
    cls, bg = colour(value, scale)
    ring = "outline:2px solid #111;outline-offset:1px;" if key == selected else ""
    sel = " tok-sel" if key == selected else ""
    return (
        f'<span class="tok {cls}{sel}" data-index="{html.escape(key)}" data-value="{value:.6g}" title="{html.escape(tip)}" '
        f'style="background:{bg};color:#111;border-radius:3px;padding:1px 2px;margin:1px;display:inline-block;'
        f'cursor:pointer;font-family:ui-monospace,monospace;white-space:pre;{ring}">{html.escape(show_token(str(t.get("token", ""))))}</span>'
    )


def legend(what: str, scale: float) -> str:
    """The scale's legend: what is coloured, pushed up / pushed down, and the value at full colour."""
    up, down = colour(1, 1)[1], colour(-1, 1)[1]
    chip = 'style="background:{};color:#111;padding:0 6px;border-radius:3px"'
    return (
        f'<div class="tok-legend" style="font-size:0.85em;margin:4px 0">colour = {html.escape(what)}: '
        f'<span class="{UP}" {chip.format(up)}>▲ {UP_LABEL} (&gt; 0)</span> '
        f'<span class="{DOWN}" {chip.format(down)}>▼ {DOWN_LABEL} (&lt; 0)</span> '
        f"full colour at ±{scale:.3g}; click a token for its numbers.</div>"
    )


def _box(body: str, title: str = "", flex: bool = False) -> str:
    style = "flex:1 1 260px;min-width:240px;" if flex else ""
    head = f'<div style="font-weight:600;margin-bottom:4px">{title}</div>' if title else ""
    return f'<div style="{style}border:1px solid #ccc;border-radius:8px;padding:8px">{head}{body}</div>'


def _muted(text: str) -> str:
    return f'<span style="opacity:0.7">{html.escape(text)}</span>'


def strip_html(data: dict, selected: str | None = None) -> str:
    """The view of one update: its tokens coloured on the diverging scale, ``selected`` (a KEY) ringed."""
    kind = view_kind(data)
    items = _items(data)
    scale = _scale(items) or 1.0
    by_where: dict[str, list[str]] = {}
    for key, where, t, v in items:
        tip = _tip(kind, t, v)
        by_where.setdefault(where, []).append(_span(key, t, v, scale, tip, selected))
    if kind == "episode":
        of = f" (of 0–{data['episodes'] - 1})" if data.get("episodes") else ""
        head = f"step {data.get('step', '?')} · episode {data.get('episode', '?')}{of} · score {_f(data.get('score'))}"
        if data.get("undone"):
            head += " · <b>undone</b>: the KL budget rolled this update back"
        if data.get("updated") is False:
            head += " · <b>no update</b>: this batch undid the previous one (KL budget)"
        body = f"{_muted(str(data.get('query', '')))}{''.join(by_where.get('', []))}"
        return f'<div class="tok-view" data-view="episode"><div>{head}</div>{legend("GAE advantage A (whitened)", scale)}{_box(body)}</div>'
    if kind == "pair":
        cols = []
        for side in ("chosen", "rejected"):
            d = data.get(side) or {}
            title = f"{side}: Σ = {_f(d.get('reward'))}"
            cols.append(_box("".join(by_where.get(side, [])), title, flex=True))
        m = _num(data.get("margin"))
        head = (
            f"step {data.get('step') or 'saved policy'} · pair {data.get('pair', '?')} · β = {_f(data.get('beta'), sign=False)} · "
            f"margin = chosen − rejected = {_f(m)} · σ(margin) = {sigmoid(m):.3f}"
        )
        return (
            f'<div class="tok-view" data-view="pair"><div>{head}</div>{legend("implicit reward β·(log π − log π_ref)", scale)}'
            f"<div>{_muted(str(data.get('prompt', '')))}</div>"
            f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cols)}</div></div>'
        )
    group = data.get("group") or {}
    cols = []
    for g, c in enumerate(_completions(data)):
        title = f"#{g}: reward {_f(c.get('reward'))} · A = {_f(c.get('advantage'))}"
        cols.append(_box("".join(by_where.get(str(g), [])), title, flex=True))
    of = f" (of 0–{data['episodes'] - 1})" if data.get("episodes") else ""
    head = (
        f"step {data.get('step', '?')} · group {data.get('episode', '?')}{of} · "
        f"group mean {_f(group.get('mean'))} · std {_f(group.get('std'), sign=False)} · {html.escape(_adv_rule(data))}"
    )
    return (
        f'<div class="tok-view" data-view="group"><div>{head}</div>{legend("group-relative advantage A", scale)}'
        f"<div>{_muted(str(group.get('prompt', '')))}</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cols)}</div></div>'
    )


def _adv_rule(data: dict) -> str:
    """GRPO's advantage in words, by ``scale_rewards`` (TRL: "group" by default; 10⁻⁴ keeps it finite)."""
    return {
        "none": "A = reward − mean (not divided: Dr. GRPO)",
        "batch": "A = (reward − mean) / (batch std + 1e-4)",
    }.get(str(data.get("scale_rewards")), "A = (reward − mean) / (std + 1e-4)")


def _tip(kind: str, t: dict, v: float) -> str:
    if kind == "episode":
        return f"A {v:+.3f} · ratio {_f(t.get('ratio'), sign=False)} · kl {_f(t.get('kl'))} · reward {_f(t.get('reward'))}"
    if kind == "pair":
        return f"β·(log π − log π_ref) {v:+.3f} · log π {_f(t.get('logp_policy'))} · log π_ref {_f(t.get('logp_ref'))}"
    return f"A {v:+.3f} · ratio {_f(t.get('ratio'), 3, False)} · k3 {_f(t.get('kl'), 4, False)}"


# ---------------------------------------------------------------------------------------------- formula
def _find(data: dict, key: str | None):
    for k, where, t, v in _items(data):
        if k == key:
            return where, t, v
    return None


def _row(name: str, value: str) -> str:
    return f'<tr><td style="padding:2px 8px 2px 0;opacity:0.8">{name}</td><td style="padding:2px 0">{value}</td></tr>'


def _clip_rows(c: ClipTerms) -> list[str]:
    lo, hi = 1 - c.eps, 1 + c.eps
    won = {
        "unclipped": "r·A is smaller: the unclipped term won, the gradient flows",
        "clipped": "clip(r)·A is smaller: the clipped term won, it is constant in θ: no gradient through this token (clip active)",
        "equal": f"r is inside [{lo:.2f}, {hi:.2f}]: both terms are equal, the gradient flows",
    }[c.branch]
    pushes = {"up": f"▲ {UP_LABEL}", "down": f"▼ {DOWN_LABEL}", "none": "not moved by this term"}[c.pushes]
    return [
        _row("objective", "L = min(r·A, clip(r, 1−ε, 1+ε)·A)"),
        _row(
            "with its numbers",
            f"min({c.ratio:.3f}·({c.advantage:+.3f}), clip({c.ratio:.3f}, {lo:.2f}, {hi:.2f})·({c.advantage:+.3f}))"
            f" = min({c.unclipped:+.4f}, {c.clipped:+.4f}) = <b>{c.objective:+.4f}</b>",
        ),
        _row("branch", html.escape(won)),
        _row("this token's log π", f"<b>{pushes}</b>"),
    ]


def formula_html(data: dict, key: str | None) -> str:
    """The formula panel of the token ``key``: its objective with its own numbers substituted."""
    found = _find(data, key)
    if found is None:
        return '<div class="tok-formula">Click a token (or pick one) to see its numbers.</div>'
    where, t, v = found
    kind = view_kind(data)
    name = html.escape(show_token(str(t.get("token", ""))))
    rows = [_row("token", f"<b>{name}</b> (id {t.get('token_id', '?')})")]
    if kind == "episode":
        if t.get("ratio") is None:
            rows.append(
                _row("no update", "this batch undid the previous update (KL budget) and made none: no ratio; below r = 1 (π = π_old)")
            )
        rows += _clip_rows(
            clip_terms(_num(t.get("ratio", 1.0) if t.get("ratio") is not None else 1.0), v, _num(data.get("cliprange", 0.2)))
        )
        beta = _num(data.get("beta"))
        penalty, rest, share = kl_share(_num(t.get("kl")), beta, _num(t.get("reward")))
        rows.append(
            _row(
                "token reward",
                f"r = −β·kl + s = −{beta:.3g}·({_num(t.get('kl')):+.4f}) + ({rest:+.4f}) = {_num(t.get('reward')):+.4f}; "
                f"KL penalty's share {share:.1%} (s: the score, on the last token only)",
            )
        )
        val, ret = _num(t.get("value")), _num(t.get("return"))
        rows.append(
            _row(
                "value vs return",
                f"V = {val:+.4f}, return G = {ret:+.4f}: G − V = A_raw = {_num(t.get('advantage_raw')):+.4f} "
                f"(the critic {'under' if ret > val else 'over'}estimated it); whitened A = {v:+.4f}",
            )
        )
        active = "—" if t.get("clipped") is None else "yes" if t.get("clipped") else "no"
        rows.append(_row("stored", f"ratio π/π_old {_f(t.get('ratio'), 4, False)} (last PPO epoch), clip active: {active}"))
    elif kind == "pair":
        beta = _num(data.get("beta"))
        lp, lr = _num(t.get("logp_policy")), _num(t.get("logp_ref"))
        side = data.get(where) or {}
        rows += [
            _row("implicit reward", "β·(log π(y_t) − log π_ref(y_t))"),
            _row("with its numbers", f"{beta:.3g}·(({lp:+.4f}) − ({lr:+.4f})) = <b>{v:+.4f}</b>"),
            _row(f"{where} sum", f"Σ = {_num(side.get('reward')):+.4f}; this token is {abs(v) / max(1e-12, _sum_abs(side)):.0%} of Σ|·|"),
            _row(
                "margin",
                f"{_num((data.get('chosen') or {}).get('reward')):+.4f} − ({_num((data.get('rejected') or {}).get('reward')):+.4f}) = "
                f"{_num(data.get('margin')):+.4f}; σ(margin) = {sigmoid(_num(data.get('margin'))):.3f} (loss −log σ = "
                f"{-math.log(max(1e-300, sigmoid(_num(data.get('margin'))))):.4f})",
            ),
        ]
    else:
        rows += _group_rows(data, _completions(data)[int(where)], t, v)
    return f'<div class="tok-formula" data-index="{html.escape(str(key))}"><table>{"".join(rows)}</table></div>'


def _group_rows(data: dict, c: dict, t: dict, v: float) -> list[str]:
    """GRPO's formula rows: the advantage from the group's rewards, the clipped ratio term, the k3 term."""
    group, beta = data.get("group") or {}, _num(data.get("beta"))
    r, mean, std = _num(c.get("reward")), _num(group.get("mean")), _num(group.get("std"))
    scale = str(data.get("scale_rewards") or "group")
    if scale == "none":
        adv = f"A = reward − mean = {r:+.3f} − ({mean:+.3f}) = {v:+.4f} (not divided by the std)"
    else:
        div, which = (_num(data.get("batch_std")), "batch std") if scale == "batch" else (std, "std")
        adv = f"A = (reward − mean) / ({which} + 1e-4) = ({r:+.3f} − ({mean:+.3f})) / ({div:.3f} + 1e-4) = {v:+.4f}"
    terms = clip_terms(_num(t.get("ratio")) if t.get("ratio") is not None else 1.0, v, _num(data.get("cliprange", 0.2)))
    rows = [_row("advantage", adv), *_clip_rows(terms)]
    rows.append(
        _row(
            "log-probs",
            f"log π {_f(t.get('logp'), 4)} · log π_old {_f(t.get('logp_old'), 4)} (ratio = e^(log π − log π_old) = "
            f"{_f(t.get('ratio'), 4, False)}) · log π_ref {_f(t.get('logp_ref'), 4)}",
        )
    )
    if t.get("kl") is None:
        rows.append(_row("KL term", "none: β = 0, no reference in the loss"))
        return rows
    k3 = _num(t.get("kl"))
    what = "k3 = e^(log π_ref − log π) − (log π_ref − log π) − 1"
    if data.get("use_bias_correction_kl"):  # TRL 1.16's default: the KL term weighed by the ratio
        kl, name = terms.ratio * k3, "β·r·k3"
        num = f"{beta:.3g}·{terms.ratio:.3f}·{k3:.5f} = {beta * kl:.5f} ({what}; weighed by r: TRL's use_bias_correction_kl)"
    else:
        kl, name, num = k3, "β·k3", f"{beta:.3g}·{k3:.5f} = {beta * k3:.5f} ({what})"
    rows.append(_row("KL term", f"{name} = {num}"))
    rows.append(
        _row("per-token objective", f"L − {name} = {terms.objective:+.4f} − {beta * kl:.5f} = <b>{terms.objective - beta * kl:+.4f}</b>")
    )
    return rows


def _sum_abs(side: dict) -> float:
    return sum(abs(_num(t.get("implicit_reward"))) for t in side.get("tokens") or [])
