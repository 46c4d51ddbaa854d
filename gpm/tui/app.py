"""The ``gpm top`` screen: Textual widgets that place what gpm.tui.cells draws from the frames a
feed (gpm.tui.feed) publishes.

Keys and the mouse change only the view (selection, sort, filter); nothing here can change the
machine. The feed runs as a worker on the app's event loop and hands each frame to
:meth:`TopApp.show`; the frame last drawn is :attr:`TopApp.rendered`, which tests compare with
the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from gpm.tui import cells
from gpm.tui.draw import Look
from gpm.tui.feed import LLM_WINDOW_HOURS, Feed, Frame, Json
from gpm.tui.rows import Rows, same_text

WIDE = 160  # from this width, processes and LLM traffic sit side by side
SCROLLBAR = 1  # the cells a table keeps for its vertical scrollbar

HELP = """\
GPM top: keys and mouse

  up/down, click  select a GPU (its processes show below), or move in a list
  tab             next pane
  a               processes of all GPUs, or of the selected GPU only
  s / S           sort processes by the next column / reverse the order
                  (or click a column heading)
  t               tree: each process under its parent (a server's runners
                  under the server)
  /               filter processes by name, workload or user
                  (Enter keeps the filter, Esc clears it)
  ?               this help (any key closes it)
  q               quit

GPM top only reads: no key changes the machine.
TTFT 820*: the model was loaded first (cold start).
TOK ~31: tokens counted by the proxy (the server sent no count).
"""


class HelpScreen(ModalScreen[None]):
    """The keys, over the live view."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: auto; max-width: 100%; height: auto; padding: 1 2; background: $panel; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")

    def on_key(self, event: events.Key) -> None:
        event.stop()
        self.dismiss()

    def on_click(self) -> None:
        self.dismiss()


class TopApp(App[None]):
    """GPUs, their processes and LLM traffic, live."""

    CSS = """
    Screen { layout: vertical; overflow: hidden; }
    #header { height: 1; background: $panel; }
    #banner { height: auto; max-height: 3; background: $error; color: $text; display: none; }
    #banner.-shown { display: block; }
    #gpus { height: auto; max-height: 40%; }
    #detail { height: auto; max-height: 4; }
    #bottom { height: 1fr; }
    #bottom.-wide { layout: horizontal; }
    .pane { height: 1fr; }
    .title { height: 1; background: $boost; text-style: bold; }
    #procs, #sessions { height: 1fr; }
    #models { height: auto; max-height: 5; }
    #filter { display: none; height: 1; border: none; padding: 0 1; }
    #filter.-shown { display: block; }
    #llm-note { display: none; height: 1fr; padding: 1 1; color: $text-muted; }
    .-standalone #llm-note { display: block; }
    .-standalone #sessions, .-standalone #models { display: none; }
    Rows { scrollbar-size-vertical: 1; }
    .-ascii Rows { scrollbar-size-vertical: 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("a", "all_gpus", "All GPUs"),
        Binding("t", "tree", "Tree"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    TITLE = "GPM top"
    ENABLE_COMMAND_PALETTE = False  # its commands (themes, screenshots) are not this view's

    def __init__(self, feed: Feed, *, ascii_only: bool = False) -> None:
        super().__init__()
        self.feed = feed
        self.ascii_only = ascii_only
        self.frame: Frame | None = None  # the newest frame from the feed
        self.rendered: Frame | None = None  # the frame now on screen
        self.selected_gpu: int | None = None
        self.all_gpus = False
        self.sort, self.reverse, self.filter_text = 0, False, ""
        self.tree_view = False
        self._shown: dict[Static, Text] = {}  # what each line widget shows now
        self._row_gpu: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="banner")
        yield Rows(id="gpus", cursor=True)
        yield Static(id="detail")
        with Vertical(id="bottom"):
            with Vertical(id="procs-pane", classes="pane"):
                yield Static(id="procs-title", classes="title")
                yield Rows(id="procs", cursor=True)
                yield Input(id="filter", placeholder="filter: name, workload or user")
            with Vertical(id="llm-pane", classes="pane"):
                yield Static(id="llm-title", classes="title")
                yield Rows(id="sessions")
                yield Rows(id="models")
                yield Static(id="llm-note")
        yield Footer()

    def on_mount(self) -> None:
        # Held, not queried: the help screen may be on top when a frame arrives.
        q = self.screen.query_one
        self._header, self._banner = q("#header", Static), q("#banner", Static)
        self._detail = q("#detail", Static)
        self._procs_title, self._llm_title = q("#procs-title", Static), q("#llm-title", Static)
        self._llm_note = q("#llm-note", Static)
        self._bottom = q("#bottom", Vertical)
        self._gpus, self._procs = q("#gpus", Rows), q("#procs", Rows)
        self._sessions, self._models = q("#sessions", Rows), q("#models", Rows)
        self._filter = q("#filter", Input)
        self.screen.set_class(self.feed.mode == "standalone", "-standalone")
        self.screen.set_class(self.ascii_only, "-ascii")  # no block-drawn scrollbars
        self.run_worker(self.feed.run(self.show), name="feed", exclusive=True)

    # ---- frames ----

    def show(self, frame: Frame) -> None:
        """Take a frame from the feed and draw it."""
        self.frame = frame
        self._draw(frame)

    def on_resize(self, event: events.Resize) -> None:
        if self.frame is not None:
            self._draw(self.frame)

    def _draw(self, frame: Frame) -> None:
        look = Look(ascii=self.ascii_only, stale=frame.stale)
        width = self.size.width
        self._bottom.set_class(width >= WIDE, "-wide")
        self._put(self._header, cells.header(frame, look, width))
        text = cells.banner(frame, look)
        self._banner.set_class(text is not None, "-shown")
        self._put(self._banner, Text(look.clip(text or "", 3 * width)))
        self._draw_gpus(frame, look, width)
        self._draw_processes(frame, look, width)
        self._draw_llm(frame, look, width)
        self.rendered = frame

    def _pane_width(self, width: int) -> int:
        return (width // 2 if width >= WIDE else width) - SCROLLBAR

    def _draw_gpus(self, frame: Frame, look: Look, width: int) -> None:
        table = self._gpus
        cols = cells.gpu_columns(width - SCROLLBAR)
        table.set_columns(cols)
        gpus: Sequence[Json] = (frame.snapshot or {}).get("gpus") or ()
        alerts = cells.alerts_by_gpu(frame.alerts)
        rows: list[list[Text]] = []
        self._row_gpu = []  # the GPU of each row (a MIG device's row: its parent's)
        for g in gpus:
            gid = g["gpu_id"]
            history = frame.history.get(gid, ())
            rows.append(
                cells.gpu_cells(g, cols, look, frame.thresholds, history, len(alerts.get(gid, ())))
            )
            migs = g.get("mig_devices") or ()
            rows += [cells.mig_cells(m, cols, look) for m in migs]
            self._row_gpu += [gid] * (1 + len(migs))
        if self.selected_gpu not in self._row_gpu:
            self.selected_gpu = self._row_gpu[0] if self._row_gpu else None
        table.set_rows(rows)
        chosen_gpu = self.selected_gpu
        if chosen_gpu is not None and self._row_gpu[table.cursor] != chosen_gpu:
            table.move_to(self._row_gpu.index(chosen_gpu))
        detail: list[Text] = []
        chosen = next((g for g in gpus if g["gpu_id"] == self.selected_gpu), None)
        if chosen is not None:
            detail = cells.gpu_detail(chosen, alerts.get(chosen["gpu_id"], ()), look, width)
        elif frame.snapshot is not None:
            message = frame.snapshot.get("message") or "No GPUs."
            detail = [look.text(look.clip(message, 4 * width))]
        detail += [
            look.text(look.clip(f"! {a.get('message') or a.get('rule')}", width), "bold red")
            for a in alerts.get(None, ())
        ]
        self._put(self._detail, Text("\n").join(detail))

    def _draw_processes(self, frame: Frame, look: Look, width: int) -> None:
        table = self._procs
        gpu = None if self.all_gpus else self.selected_gpu
        rows = cells.processes(frame.snapshot, gpu, self.sort, self.reverse, self.filter_text)
        mig = any(p.get("mig_index") is not None for _, p in rows)
        cols = cells.process_columns(self._pane_width(width), mig)
        if self.tree_view:
            scope = cells.processes(frame.snapshot, gpu, self.sort, self.reverse, "")
            shown = cells.process_tree(rows, scope)
        else:
            shown = [(gid, p, 0) for gid, p in rows]
        table.set_columns(cols)
        table.set_rows([cells.process_cells(gid, p, cols, look, depth) for gid, p, depth in shown])
        label, _, largest_first = cells.SORTS[self.sort]
        arrow = (
            ("v" if largest_first != self.reverse else "^")
            if look.ascii
            else ("↓" if largest_first != self.reverse else "↑")
        )
        where = "all GPUs" if gpu is None else f"GPU {gpu}"
        parts = [f"Processes{look.sep}{where} (a)", f"sort {label} {arrow} (s)"]
        if self.tree_view:
            parts.append("tree (t)")
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r} (/)")
        unknown = [
            g["gpu_id"]
            for g in (frame.snapshot or {}).get("gpus") or ()
            if g.get("processes") is None and (gpu is None or g["gpu_id"] == gpu)
        ]
        if unknown:
            parts.append("process list unknown on GPU " + ",".join(map(str, unknown)))
        self._put(
            self._procs_title, look.text(look.clip(look.sep.join(parts), self._pane_width(width)))
        )

    def _draw_llm(self, frame: Frame, look: Look, width: int) -> None:
        pane = self._pane_width(width)
        if frame.mode == "standalone":
            self._put(self._llm_title, look.text("LLM requests"))
            self._put(self._llm_note, look.text(frame.note or ""))
            return
        minutes = LLM_WINDOW_HOURS * 60
        title = f"LLM requests, newest first{look.sep}models: last {minutes:.0f} min"
        self._put(self._llm_title, look.text(look.clip(title, pane)))
        sessions = self._sessions
        cols = cells.session_columns(pane)
        sessions.set_columns(cols)
        sessions.set_rows([cells.session_cells(s, cols, look) for s in frame.sessions])
        models = self._models
        mcols = cells.model_columns(pane)
        models.set_columns(mcols)
        models.set_rows(
            [
                cells.model_cells(name, stats, vram, mcols, look)
                for name, stats, vram in cells.model_rows(frame.model_stats, frame.models)
            ],
        )

    # ---- tables ----

    def _put(self, widget: Static, text: Text) -> None:
        """Show ``text`` in ``widget`` when it differs; a new layout only when its line count
        changes (most lines have a fixed height: a repaint is enough)."""
        old = self._shown.get(widget)
        if old is not None and same_text(old, text):
            return
        self._shown[widget] = text
        lines = text.plain.count("\n")
        widget.update(text, layout=old is None or old.plain.count("\n") != lines)

    # ---- events ----

    def on_rows_highlighted(self, event: Rows.Highlighted) -> None:
        if event.rows is not self._gpus or not 0 <= event.row < len(self._row_gpu):
            return
        gpu = self._row_gpu[event.row]
        if gpu != self.selected_gpu:
            self.selected_gpu = gpu
            self._redraw()

    def on_rows_heading_clicked(self, event: Rows.HeadingClicked) -> None:
        sort = cells.SORT_COLUMNS.get(event.key)
        if event.rows is not self._procs or sort is None:
            return
        if sort == self.sort:
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = sort, False
        self._redraw()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._filter.remove_class("-shown")
        self._procs.focus()

    def _redraw(self) -> None:
        if self.frame is not None:
            self._draw(self.frame)

    # ---- actions ----

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_sort(self) -> None:
        self.sort, self.reverse = (self.sort + 1) % len(cells.SORTS), False
        self._redraw()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._redraw()

    def action_tree(self) -> None:
        self.tree_view = not self.tree_view
        self._redraw()

    def action_all_gpus(self) -> None:
        self.all_gpus = not self.all_gpus
        self._redraw()

    def action_filter(self) -> None:
        box = self._filter
        box.add_class("-shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self._filter
        box.remove_class("-shown")
        if box.value:
            box.value = ""  # Input.Changed clears the filter
        self._procs.focus()
