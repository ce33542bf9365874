"""Streamlit's client side of the WebSocket protocol, as data: no sockets, no clock.

What the browser's front end does with each message, reduced to what a load test
needs (Streamlit 1.67; the front end's code is in the wheel, minified, in
``streamlit/static/static/js/index.*.js``, and in streamlit/streamlit under
``frontend/``):

* **Back messages** (:func:`rerun_msg`): the front end asks for every script run
  with a ``BackMsg.rerun_script`` (a ``ClientState``): the query string, the *full*
  widget state (every widget on the page with its current value; a pressed button is
  a ``trigger_value`` sent once), the page's script hash (empty on the first run,
  which names the page by its URL path, ``page_name``, instead), the fragment id
  for a fragment's own rerun, ``is_auto_rerun`` for a fragment's timer, the hashes
  of the messages it has cached, and the browser's context (time zone, locale, URL).
  App.tsx ``sendRerunBackMsg``; WidgetStateManager ``sendUpdateWidgetsMessage``.
* **Forward messages** (:class:`ForwardMsgCache`): a large ``new_element`` delta the
  server marks ``cacheable`` is kept by its hash; later the server may send only a
  ``ref_hash`` to it (for the hashes the client listed in its rerun request).
  Entries expire after ``max_cached_message_age`` script runs (ForwardMessageCache.ts).
* **The element tree** (:class:`AppTree`): four roots (main, sidebar, event, bottom);
  each delta's ``metadata.delta_path`` says where its element or block goes; a block
  replacing a block of the same type keeps its children; a finished run removes what
  it did not redraw (the stale nodes), within its fragments only for a fragment run
  (AppRoot.ts, BlockNode.ts, ClearStaleNodeVisitor.ts).
* **Widget states** (:class:`Widgets`): each widget the page shows is in the state
  with the value its element carries (its default, or the value the script set,
  ``set_value``) until the user changes it; widgets no longer on the page are
  dropped after a finished run (WidgetStateManager.ts ``removeInactive``).

Not modelled: forms (a widget in an ``st.form`` is sent as if outside it), file
uploads, custom components, ``arrow_add_rows``, transient elements (spinners, toasts:
counted, not kept), and the value types of widgets other than those in
:data:`VALUE_TYPES` (those are left out of the state, so the server keeps their last
value, which is what it does for a widget a browser has not drawn yet).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

ROOTS = ("main", "sidebar", "event", "bottom")
NO_RUN = "NO_SCRIPT_RUN_ID"

FINISHED_SUCCESSFULLY = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
FINISHED_EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN
FINISHED_FRAGMENT = ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
SUCCESS = (FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT)

#: Element types that are charts (their data arrives inside the element).
CHART_KINDS = frozenset({"vega_lite_chart", "plotly_chart", "deck_gl_json_chart",
                         "graphviz_chart", "echarts_chart"})

#: The WidgetState field each widget type's value goes in (Streamlit 1.67's
#: ``register_widget(..., value_type=...)``); number_input is int_value or
#: double_value by its data type, slider double_array_value or (select_slider)
#: string_array_value.
VALUE_TYPES = {
    "button": "trigger_value", "download_button": "trigger_value",
    "checkbox": "bool_value", "selectbox": "string_value", "radio": "string_value",
    "multiselect": "string_array_value", "number_input": "double_value",
    "slider": "double_array_value", "text_input": "string_value",
    "text_area": "string_value", "color_picker": "string_value",
}
TRIGGERS = frozenset({"button", "download_button"})


class ProtocolError(Exception):
    """A message the front end would refuse (a bad delta path, a cache miss)."""


# --------------------------------------------------------------------------- back messages


def context_info(url: str) -> dict:
    """The browser context a front end sends with each rerun (``ContextInfo``): here a
    fixed one, UTC and en-US, light theme, not embedded."""
    return {"timezone": "UTC", "timezone_offset": 0, "locale": "en-US", "url": url,
            "is_embedded": False, "color_scheme": "light"}


def rerun_msg(*, query_string: str = "", widget_states: WidgetStates | None = None,
              page_script_hash: str = "", page_name: str = "", fragment_id: str = "",
              is_auto_rerun: bool = False, cached_message_hashes=(),
              context: dict | None = None) -> bytes:
    """A ``BackMsg`` asking for a script run, serialized (what the front end's
    ``sendRerunBackMsg`` sends)."""
    msg = BackMsg()
    cs = msg.rerun_script
    cs.query_string = query_string
    if widget_states is not None:
        cs.widget_states.CopyFrom(widget_states)
    cs.page_script_hash = page_script_hash
    cs.page_name = page_name
    cs.fragment_id = fragment_id
    cs.is_auto_rerun = is_auto_rerun
    cs.cached_message_hashes.extend(cached_message_hashes)
    for k, v in (context or {}).items():
        setattr(cs.context_info, k, v)
    return msg.SerializeToString()


def page_name_of(path: str) -> str:
    """The page name the first rerun carries: the URL path without its slashes
    ("/train" → "train", "/" → "")."""
    return path.split("?", 1)[0].strip("/")


# --------------------------------------------------------------------------- forward messages


def parse_forward(data: bytes) -> ForwardMsg:
    msg = ForwardMsg()
    msg.ParseFromString(data)
    return msg


def run_identity(msg: ForwardMsg) -> tuple[str, tuple[str, ...]] | None:
    """(script run id, fragment ids) of a new_session or script_finished message."""
    run = msg.metadata.run
    if not run.script_run_id:
        return None
    return run.script_run_id, tuple(run.fragment_ids)


class ForwardMsgCache:
    """The front end's cache of large messages (ForwardMessageCache.ts): a cacheable
    message is kept by its hash; a ``ref_hash`` message is replaced by the message it
    refers to, with the reference's metadata."""

    def __init__(self):
        self.entries: dict[str, tuple[bytes, int, str]] = {}  # hash → (bytes, run count, fragment)
        self.run_count = 0
        self.hits = 0

    def process(self, msg: ForwardMsg, data: bytes) -> ForwardMsg:
        kind = msg.WhichOneof("type")
        if kind != "ref_hash":
            if msg.metadata.cacheable and msg.hash:
                if msg.hash in self.entries:
                    raw, _, frag = self.entries[msg.hash]
                    self.entries[msg.hash] = (raw, self.run_count, frag)
                else:
                    frag = msg.delta.fragment_id if kind == "delta" else ""
                    self.entries[msg.hash] = (data, self.run_count, frag)
            return msg
        entry = self.entries.get(msg.ref_hash)
        if entry is None:
            raise ProtocolError(f"cached ForwardMsg miss (hash {msg.ref_hash})")
        self.hits += 1
        self.entries[msg.ref_hash] = (entry[0], self.run_count, entry[2])
        out = parse_forward(entry[0])
        out.metadata.CopyFrom(msg.metadata)
        return out

    def increment_run_count(self, max_age: int, fragment_ids=()) -> None:
        """After a finished run: entries not used for more than ``max_age`` runs go
        (for a fragment run, only entries of those fragments)."""
        self.run_count += 1
        for h, (_, used, frag) in list(self.entries.items()):
            if fragment_ids and (not frag or frag not in fragment_ids):
                continue
            if self.run_count - used > max_age:
                del self.entries[h]

    def hashes(self) -> list[str]:
        return list(self.entries)


# --------------------------------------------------------------------------- the tree


@dataclass
class ElementNode:
    element: object            # streamlit.proto.Element_pb2.Element
    kind: str                  # its type: "markdown", "button", "vega_lite_chart", ...
    run_id: str
    fragment_id: str
    script_hash: str           # metadata.active_script_hash: the page script that drew it
    arrived: float             # when its message arrived (the caller's clock)


@dataclass
class BlockNode:
    block: object | None       # streamlit.proto.Block_pb2.Block (None: a root)
    run_id: str = NO_RUN
    fragment_id: str = ""
    script_hash: str = ""
    children: list = field(default_factory=list)

    @property
    def block_type(self) -> str | None:
        return self.block.WhichOneof("type") if self.block is not None else None


class AppTree:
    """The page as the front end holds it: blocks and elements by delta path."""

    def __init__(self):
        self.roots = [BlockNode(None) for _ in ROOTS]

    def get(self, path) -> ElementNode | BlockNode | None:
        if not path or not 0 <= path[0] < len(self.roots):
            return None
        node = self.roots[path[0]]
        for i in path[1:]:
            if not isinstance(node, BlockNode) or not 0 <= i < len(node.children):
                return None
            node = node.children[i]
        return node

    def apply(self, delta, path, run_id: str, script_hash: str, arrived: float):
        """Put a ``new_element`` or ``add_block`` delta at ``path``; returns the new node
        (None for a delta type not kept). Raises ProtocolError where the front end
        would fail ("Bad 'setIn' index ...")."""
        kind = delta.WhichOneof("type")
        path = list(path)
        if len(path) < 2 or not 0 <= path[0] < len(self.roots):
            raise ProtocolError(f"bad delta path {path}")
        if kind == "new_element":
            el = delta.new_element
            node = ElementNode(el, el.WhichOneof("type"), run_id, delta.fragment_id,
                               script_hash, arrived)
        elif kind == "add_block":
            old = self.get(path)
            node = BlockNode(delta.add_block, run_id, delta.fragment_id, script_hash)
            if isinstance(old, BlockNode) and old.block_type == node.block_type:
                node.children = old.children  # same kind of block: keeps its children
        else:
            return None
        self._set_in(self.roots[path[0]], path[1:], node, run_id)
        return node

    @staticmethod
    def _set_in(block: BlockNode, path, node, run_id: str) -> None:
        for depth, i in enumerate(path):
            if not 0 <= i <= len(block.children):
                raise ProtocolError(f"Bad 'setIn' index {i} (should be between "
                                    f"[0, {len(block.children)}]) at depth {depth}")
            block.run_id = run_id  # every block on the way is touched by this run
            if depth == len(path) - 1:
                if i == len(block.children):
                    block.children.append(node)
                else:
                    block.children[i] = node
                return
            child = block.children[i] if i < len(block.children) else None
            if not isinstance(child, BlockNode):
                raise ProtocolError(f"delta path {list(path)} goes through an element")
            block = child

    def clear_stale(self, run_id: str, fragment_ids=()) -> None:
        """What a finished run did not draw goes (ClearStaleNodeVisitor.ts)."""
        fragment_ids = tuple(fragment_ids)
        for i, root in enumerate(self.roots):
            kept = _clear_block(root, run_id, fragment_ids, None)
            self.roots[i] = kept if kept is not None else BlockNode(None)

    def keep_only_script(self, script_hash: str) -> None:
        """On a page change: drop what another page's script drew (the main script's
        own elements, e.g. app.py's, stay)."""
        def keep(block: BlockNode) -> None:
            block.children = [c for c in block.children if c.script_hash == script_hash]
            for c in block.children:
                if isinstance(c, BlockNode):
                    keep(c)
        for root in self.roots:
            keep(root)

    def walk(self) -> Iterator[tuple[tuple[int, ...], ElementNode | BlockNode]]:
        """(path, node) of every node, depth first, in page order."""
        def rec(node, path):
            yield path, node
            if isinstance(node, BlockNode):
                for i, c in enumerate(node.children):
                    yield from rec(c, path + (i,))
        for i, root in enumerate(self.roots):
            for i2, c in enumerate(root.children):
                yield from rec(c, (i, i2))

    def elements(self, kinds=None) -> Iterator[tuple[tuple[int, ...], ElementNode]]:
        for path, node in self.walk():
            if isinstance(node, ElementNode) and (kinds is None or node.kind in kinds):
                yield path, node


def _clear_block(node: BlockNode, run_id: str, fragment_ids, fragment_of_block):
    inner = fragment_of_block
    if not fragment_ids:
        if node.run_id != run_id:
            return None  # a root left untouched by a whole run is emptied (the caller)
    else:
        if fragment_of_block and node.run_id != run_id:
            return None
        if node.fragment_id and node.fragment_id in fragment_ids and node.run_id == run_id:
            inner = node.fragment_id
    children = []
    for c in node.children:
        if isinstance(c, BlockNode):
            kept = _clear_block(c, run_id, fragment_ids, inner)
        else:
            kept = _clear_element(c, run_id, fragment_ids, inner)
        if kept is not None:
            children.append(kept)
    node.children = children
    node.run_id = run_id
    return node


def _clear_element(node: ElementNode, run_id: str, fragment_ids, fragment_of_block):
    if fragment_ids and (not node.fragment_id or not fragment_of_block or node.run_id == run_id):
        return node
    return node if node.run_id == run_id else None


# --------------------------------------------------------------------------- elements


def widget_proto(node: ElementNode):
    """The widget message inside an element (its ``id``, ``label``, ...), or None."""
    if node.kind not in VALUE_TYPES:
        return None
    return getattr(node.element, node.kind)


_MARKUP = re.compile(r"[*`]")


def element_text(node: ElementNode) -> str | None:
    """The text a person reads in an element, or None: markdown (captions included)
    without its ``*`` and backticks, headings, plain text, alerts, a metric as
    "label: value", a progress bar's text, an exception as "type: message"."""
    el = getattr(node.element, node.kind, None)
    if node.kind in ("markdown", "heading", "text"):
        return _MARKUP.sub("", el.body)
    if node.kind == "alert":
        return _MARKUP.sub("", el.body)
    if node.kind == "metric":
        return f"{el.label}: {el.body}"
    if node.kind == "progress":
        return el.text or None
    if node.kind == "exception":
        return f"{el.type}: {el.message}"
    return None


def is_error(node: ElementNode) -> bool:
    """An exception box, or an ``st.error`` alert."""
    if node.kind == "exception":
        return not node.element.exception.is_warning
    if node.kind == "alert":
        return node.element.alert.format == node.element.alert.ERROR
    return False


def chart_spec(node: ElementNode) -> str:
    """A chart's spec (Vega-Lite JSON, Plotly figure JSON, ...), '' if it has none."""
    el = getattr(node.element, node.kind)
    for name in ("spec", "figure"):
        if hasattr(el, name):
            value = getattr(el, name)
            return value if isinstance(value, str) else getattr(value, "spec", "")
    return ""


def chart_data_bytes(node: ElementNode) -> int:
    """Bytes of data a Vega-Lite chart carries (its Arrow datasets); 0 for others."""
    if node.kind != "vega_lite_chart":
        return 0
    el = node.element.vega_lite_chart
    return len(el.data.data) + sum(len(d.data.data) for d in el.datasets)


# --------------------------------------------------------------------------- widgets


def initial_state(node: ElementNode) -> WidgetState | None:
    """The state a front end gives a widget it draws: the value the script set
    (``set_value``) or the widget's default; None for a button (it has no state until
    pressed), a widget with no value (a selectbox with no option chosen) or a type
    not modelled."""
    w = widget_proto(node)
    if w is None or node.kind in TRIGGERS:
        return None
    value = _proto_value(node.kind, w)
    if value is None:
        return None
    return make_state(node, value)


def _proto_value(kind: str, w):
    has = w.HasField
    if kind == "checkbox":
        return w.value if w.set_value else w.default
    if kind in ("selectbox", "radio"):
        if w.set_value and has("raw_value"):
            return w.raw_value
        if has("default") and 0 <= w.default < len(w.options):
            return w.options[w.default]
        return None
    if kind == "multiselect":
        if w.set_value:
            return list(w.raw_values)
        return [w.options[i] for i in w.default if 0 <= i < len(w.options)]
    if kind == "number_input":
        if w.set_value and has("value"):
            return w.value
        return w.default if has("default") else None
    if kind == "slider":
        if w.type == w.SELECT_SLIDER:
            if w.set_value and len(w.raw_value):
                return list(w.raw_value)
            vals = w.value if w.set_value else w.default
            return [w.options[int(i)] for i in vals if 0 <= int(i) < len(w.options)]
        return list(w.value if w.set_value else w.default)
    if kind in ("text_input", "text_area"):
        if w.set_value and has("value"):
            return w.value
        return w.default if has("default") else None
    if kind == "color_picker":
        return w.value if getattr(w, "set_value", False) else w.default
    return None


def make_state(node: ElementNode, value) -> WidgetState:
    """A WidgetState for ``node``'s widget holding ``value``, in the field its type uses
    (a button: ``trigger_value`` whatever ``value`` is)."""
    w = widget_proto(node)
    if w is None:
        raise ValueError(f"{node.kind} is not a widget this driver can set")
    state = WidgetState(id=w.id)
    kind = node.kind
    if kind in TRIGGERS:
        state.trigger_value = True
    elif kind == "checkbox":
        state.bool_value = _as_bool(value)
    elif kind == "number_input":
        if w.data_type == w.INT:
            state.int_value = int(value)
        else:
            state.double_value = float(value)
    elif kind == "slider" and w.type == w.SELECT_SLIDER:
        state.string_array_value.data.extend(str(v) for v in _as_list(value))
    elif kind == "slider":
        state.double_array_value.data.extend(float(v) for v in _as_list(value))
    elif kind == "multiselect":
        state.string_array_value.data.extend(str(v) for v in _as_list(value))
    else:
        if kind in ("selectbox", "radio") and w.options and str(value) not in w.options:
            raise ValueError(f"{value!r} is not an option of {kind} {w.label!r}: {list(w.options)}")
        state.string_value = str(value)
    return state


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    return bool(value)


def _as_list(value) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Widgets:
    """The front end's widget state (WidgetStateManager.ts): widget id → WidgetState."""

    def __init__(self):
        self.states: dict[str, WidgetState] = {}

    def on_element(self, node: ElementNode) -> None:
        """A widget was drawn: it enters the state with its value, or takes the value
        the script set for it."""
        w = widget_proto(node)
        if w is None or node.kind in TRIGGERS:
            return
        if w.id not in self.states or getattr(w, "set_value", False):
            state = initial_state(node)
            if state is not None:
                self.states[w.id] = state

    def set(self, state: WidgetState) -> None:
        self.states[state.id] = state

    def drop(self, widget_id: str) -> None:
        self.states.pop(widget_id, None)

    def remove_inactive(self, active_ids) -> None:
        for wid in list(self.states):
            if wid not in active_ids:
                del self.states[wid]

    def message(self) -> WidgetStates:
        msg = WidgetStates()
        msg.widgets.extend(self.states.values())
        return msg
