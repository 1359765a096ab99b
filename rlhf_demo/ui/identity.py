"""The page's identity bar: who you are (a nickname you may change) and the teacher key. Lays out and
wires only: tokens, nicknames, the key and its throttle are ``rlhf_demo.classroom.identity``.

The browser keeps ``{"token", "nick", "proof"}`` in its local storage (``gr.BrowserState``, encrypted
with a key that survives restarts). On load the page sends it; the server binds this page's session to
that user (``AppContext.sessions``) and sets ``ctx.who``, whose change refreshes whatever depends on
the user. The bar is shown only on a shared server; in local use everyone is owner and teacher.
"""
from __future__ import annotations

import gradio as gr

from rlhf_demo.classroom.identity import (MAX_NICK, User, check_proof, clean_nickname, default_nickname, key_matches,
                                          new_token, teacher_key, teacher_proof, teacher_usernames, user_id,
                                          valid_token, browser_secret)
from rlhf_demo.ui.context import AppContext, session_of


def _who_line(u: User) -> str:
    role = " · **teacher**" if u.teacher else ""
    return f"You are **{u.nickname}**{role}"   # nicknames hold only letters, digits, spaces and -_.'


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    classroom = ctx.classroom()
    stored = gr.BrowserState({}, storage_key="rlhf-lab-identity", secret=browser_secret(ctx.runs_dir))
    ctx.who = gr.State("")
    with gr.Row(visible=classroom, elem_id="who-bar", equal_height=True):
        who_md = gr.Markdown("", elem_id="who")
        with gr.Accordion("Your name · teacher", open=False, elem_id="who-settings"):
            with gr.Row():
                nick = gr.Textbox(label=f"Nickname (what the class sees, up to {MAX_NICK} characters)", max_length=MAX_NICK,
                                  elem_id="who-nick", scale=3)
                rename = gr.Button("Save name", elem_id="who-rename", scale=1)
            with gr.Row(visible=bool(teacher_key())):
                key = gr.Textbox(label="Teacher key", type="password", elem_id="who-key", scale=3)
                unlock = gr.Button("Unlock teacher mode", elem_id="who-unlock", scale=1)
            key_msg = gr.Markdown("", elem_id="who-key-msg")

    def bind(value: dict, request: gr.Request, nickname=None) -> tuple[dict, User]:
        value = value if isinstance(value, dict) else {}
        token = value.get("token") if valid_token(value.get("token")) else new_token()
        uid = user_id(token)
        nick_ = clean_nickname(nickname if nickname is not None else value.get("nick"), default_nickname(uid))
        username = (getattr(request, "username", None) or "").lower()
        teacher = check_proof(token, value.get("proof")) or (bool(username) and username in teacher_usernames())
        user = User(uid, nick_, teacher=teacher)
        ctx.sessions.bind(session_of(request), user)
        return {"token": token, "nick": nick_, "proof": value.get("proof") if teacher else ""}, user

    def who_value(u: User) -> str:
        return f"{u.id}|{int(u.teacher)}|{u.nickname}"

    def identify(value, request: gr.Request):
        value, u = bind(value, request)
        return value, who_value(u), _who_line(u), u.nickname

    def on_rename(new_name, value, request: gr.Request):
        if not isinstance(new_name, str) or not new_name.strip():
            raise gr.Error("Type a nickname first.")
        value, u = bind(value, request, nickname=new_name)
        if clean_nickname(new_name, "") != new_name.strip():
            gr.Info(f"Saved as “{u.nickname}”: letters, digits, spaces and - _ . ' only, up to {MAX_NICK} characters.")
        return value, who_value(u), _who_line(u), u.nickname

    def on_unlock(typed, value, request: gr.Request):
        client = getattr(getattr(request, "client", None), "host", None) or session_of(request)
        wait = ctx.throttle.wait_s(client)
        if wait > 0:
            return gr.skip(), gr.skip(), gr.skip(), "", f"⚠️ Too many wrong keys: try again in {wait:.0f} s."
        value = value if isinstance(value, dict) else {}
        token = value.get("token") if valid_token(value.get("token")) else None
        if token is None or not key_matches(typed):
            delay = ctx.throttle.failed(client)
            return gr.skip(), gr.skip(), gr.skip(), "", f"⚠️ That is not the teacher key. Next try in {delay:.0f} s."
        ctx.throttle.succeeded(client)
        value, u = bind({**value, "proof": teacher_proof(token)}, request)
        return value, who_value(u), _who_line(u), "", "✅ Teacher mode on in this browser (it stays on after a reload)."

    demo.load(identify, stored, [stored, ctx.who, who_md, nick], api_visibility="private")
    rename.click(on_rename, [nick, stored], [stored, ctx.who, who_md, nick], api_visibility="private")
    nick.submit(on_rename, [nick, stored], [stored, ctx.who, who_md, nick], api_visibility="private")
    unlock.click(on_unlock, [key, stored], [stored, ctx.who, who_md, key, key_msg], api_visibility="private",
                 concurrency_limit=None)
    key.submit(on_unlock, [key, stored], [stored, ctx.who, who_md, key, key_msg], api_visibility="private",
               concurrency_limit=None)


def refresh_models(ctx: AppContext) -> None:
    """Once the page has said who it is, set every registered model dropdown's choices for that user."""
    if ctx.who is None or not ctx.model_dropdowns:
        return

    def on_who(request: gr.Request):
        choices = ctx.model_choices(request)
        return [gr.update(choices=choices) for _ in ctx.model_dropdowns]

    ctx.who.change(on_who, None, list(ctx.model_dropdowns), api_visibility="private", show_progress="hidden")
