"""The page's identity bar: who you are (a nickname you may change), the class code (classroom mode,
until you joined), and the teacher key (in, and out again on a shared lab PC). Lays out and wires only:
the actions are ``ui.class_actions`` (the same as the named API's), tokens and proofs
``rlhf_demo.classroom``.

The browser keeps ``{"token", "nick", "proof", "joined"}`` in its local storage (``gr.BrowserState``,
encrypted with a key that survives restarts): ``proof`` the teacher proof, ``joined`` the join proof
(both HMACs only the server can make, so a reload or a restart keeps them). On load the page sends it;
the server binds this page's session to that user (``AppContext.sessions``) and sets ``ctx.who``, whose
change refreshes whatever depends on the user. The bar is shown only on a shared server; in local use
everyone is owner and teacher. The teacher key sits behind a small closed "I'm the teacher" accordion:
a student sees a name box, not a key field.

Model dropdowns (``AppContext.model_dropdowns``) follow the user and the runs: their choices are set
when the page says who it is, when a tab is opened and every few seconds if they changed, so a run the
teacher pinned or a run that just ended is in the list without a refresh button.
"""

from __future__ import annotations

import gradio as gr

from rlhf_demo.classroom.identity import MAX_NICK, User, browser_secret, clean_nickname, new_token, teacher_key, valid_token
from rlhf_demo.ui import class_actions
from rlhf_demo.ui.context import AppContext

MODEL_LIST_S = 10.0
"""How often a page checks whether its model lists changed (a listing of the runs folder)."""


def _who_line(u: User) -> str:
    role = " · **teacher**" if u.teacher else ""
    return f"You are **{u.nickname}**{role}"  # nicknames hold only letters, digits, spaces and -_.'


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    classroom = ctx.classroom()
    stored = gr.BrowserState({}, storage_key="rlhf-lab-identity", secret=browser_secret(ctx.runs_dir))
    ctx.who = gr.State("")
    with gr.Row(visible=classroom, elem_id="who-bar", equal_height=True):
        who_md = gr.Markdown("", elem_id="who")
        with gr.Row(visible=False, elem_id="who-join-row") as join_row:
            code = gr.Textbox(label="Class code", placeholder="the code on your teacher's screen", max_lines=1, elem_id="who-code", scale=2)
            join = gr.Button("Join the class", variant="primary", elem_id="who-join", scale=1)
        with gr.Column(scale=1, min_width=420):
            with gr.Accordion("Your name", open=False, elem_id="who-settings"):
                with gr.Row():
                    nick = gr.Textbox(
                        label=f"Nickname (what the class sees, up to {MAX_NICK} characters)",
                        max_length=MAX_NICK,
                        elem_id="who-nick",
                        scale=3,
                    )
                    rename = gr.Button("Save name", elem_id="who-rename", scale=1)
            with gr.Accordion("I'm the teacher", open=False, visible=bool(teacher_key()), elem_id="who-teacher"):
                with gr.Row():
                    key = gr.Textbox(label="Teacher key", type="password", elem_id="who-key", scale=3)
                    unlock = gr.Button("Unlock teacher mode", elem_id="who-unlock", scale=1)
                    leave = gr.Button("Leave teacher mode", elem_id="who-leave", scale=1)
                key_msg = gr.Markdown("", elem_id="who-key-msg")

    def who_value(u: User) -> str:
        return f"{u.id}|{int(u.teacher)}|{u.nickname}|{int(ctx.roster.joined(u.id))}"

    def show(value: dict, u: User):
        return (value, who_value(u), _who_line(u), u.nickname, gr.update(visible=ctx.classroom() and not class_actions.joined(ctx, u)))

    def token_of(value) -> str:
        return value.get("token") if isinstance(value, dict) and valid_token(value.get("token")) else ""

    def identify(value, request: gr.Request):
        value = value if isinstance(value, dict) else {}
        token = token_of(value) or new_token()
        try:
            u = class_actions.identify(
                ctx,
                request,
                token,
                value.get("nick"),
                value.get("proof"),
                value.get("joined"),
                username=getattr(request, "username", None) or "",
            )
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        value = {
            "token": token,
            "nick": u.nickname,
            "proof": value.get("proof") if u.teacher else "",
            "joined": value.get("joined") if ctx.roster.joined(u.id) else "",
        }
        return show(value, u)

    def on_join(typed, value, request: gr.Request):
        value = value if isinstance(value, dict) else {}
        try:
            out = class_actions.join(ctx, request, typed, value.get("nick"), token_of(value))
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        value = {**value, "token": out["token"], "nick": out["nickname"], "joined": out["proof"]}
        return (*show(value, ctx.user(request)), "")

    def on_rename(new_name, value, request: gr.Request):
        try:
            u = class_actions.rename(ctx, request, new_name)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        if clean_nickname(new_name, "") != new_name.strip():
            gr.Info(f"Saved as “{u.nickname}”: letters, digits, spaces and - _ . ' only, up to {MAX_NICK} characters.")
        return show({**(value if isinstance(value, dict) else {}), "nick": u.nickname}, u)

    def on_unlock(typed, value, request: gr.Request):
        token = token_of(value)
        if not token or ctx.user(request).id != class_actions.user_id(token):
            return (gr.skip(),) * 5 + ("", "⚠️ Reload the page first.")
        try:
            out = class_actions.teacher_login(ctx, request, typed, token)
        except ValueError as exc:
            return (gr.skip(),) * 5 + ("", f"⚠️ {str(exc)[0].upper()}{str(exc)[1:]}.")
        value = {**value, "proof": out["proof"]}
        return (*show(value, ctx.user(request)), "", "✅ Teacher mode on in this browser (it stays on after a reload).")

    def on_leave(value, request: gr.Request):
        class_actions.teacher_logout(ctx, request)
        value = {**(value if isinstance(value, dict) else {}), "proof": ""}
        return (*show(value, ctx.user(request)), "Teacher mode is off in this browser.")

    bar = [stored, ctx.who, who_md, nick, join_row]
    demo.load(identify, stored, bar, api_visibility="private")
    join.click(on_join, [code, stored], [*bar, code], api_visibility="private", concurrency_limit=None)
    code.submit(on_join, [code, stored], [*bar, code], api_visibility="private", concurrency_limit=None)
    rename.click(on_rename, [nick, stored], bar, api_visibility="private")
    nick.submit(on_rename, [nick, stored], bar, api_visibility="private")
    unlock.click(on_unlock, [key, stored], [*bar, key, key_msg], api_visibility="private", concurrency_limit=None)
    key.submit(on_unlock, [key, stored], [*bar, key, key_msg], api_visibility="private", concurrency_limit=None)
    leave.click(on_leave, stored, [*bar, key_msg], api_visibility="private", concurrency_limit=None)


def refresh_models(ctx: AppContext, tabs: gr.Tabs | None = None) -> None:
    """Keep every registered model dropdown's choices those of this user and of the runs there are now:
    once the page has said who it is, whenever a tab is opened, and every ``MODEL_LIST_S`` seconds when
    they changed (a run the teacher pinned, or one that just ended). One listing of the runs folder each.
    Not on a dropdown's focus: an update while its list is open empties the open list (measured, gradio 6.31)."""
    dropdowns = list(ctx.model_dropdowns)
    if not dropdowns:
        return
    shown = gr.State(None)  # the choices this page shows (a few short strings)

    def all_lists(request: gr.Request):
        choices = ctx.model_choices(request)
        return [choices, *(gr.update(choices=choices) for _ in dropdowns)]

    def if_changed(last, request: gr.Request):
        choices = ctx.model_choices(request)
        if choices == last:
            return [gr.skip()] * (len(dropdowns) + 1)
        return [choices, *(gr.update(choices=choices) for _ in dropdowns)]

    quiet = dict(api_visibility="private", show_progress="hidden")
    if ctx.who is not None:
        ctx.who.change(all_lists, None, [shown, *dropdowns], **quiet)
    if tabs is not None:
        tabs.select(all_lists, None, [shown, *dropdowns], **quiet)
    gr.Timer(MODEL_LIST_S).tick(if_changed, shown, [shown, *dropdowns], **quiet)
