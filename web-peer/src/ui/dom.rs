//! Small helpers over web-sys. Text from the network only ever goes
//! through `set_text_content`: it is never parsed as HTML.

use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{Document, Element, HtmlElement};

pub fn document() -> Result<Document, JsValue> {
    web_sys::window()
        .and_then(|window| window.document())
        .ok_or_else(|| JsValue::from_str("no document"))
}

/// The element with `id`, as the type the page shell declares it with.
pub fn by_id<T: JsCast>(id: &str) -> Result<T, JsValue> {
    document()?
        .get_element_by_id(id)
        .ok_or_else(|| JsValue::from_str(&format!("the page has no #{id}")))?
        .dyn_into::<T>()
        .map_err(|_| JsValue::from_str(&format!("#{id} is not the expected kind of element")))
}

/// A new `<tag class=class>` holding `text` as text.
pub fn element(tag: &str, class: &str, text: &str) -> Result<Element, JsValue> {
    let element = document()?.create_element(tag)?;
    if !class.is_empty() {
        element.set_class_name(class);
    }
    element.set_text_content(Some(text));
    Ok(element)
}

/// Calls `handler` on every `event` of `target`, for the page's lifetime.
pub fn on<E: JsCast>(
    target: &HtmlElement,
    event: &str,
    handler: impl FnMut(E) + 'static,
) -> Result<(), JsValue> {
    let mut handler = handler;
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        if let Ok(event) = event.dyn_into::<E>() {
            handler(event);
        }
    });
    target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
    // The page never removes its controls: the listener lives as long as it.
    closure.forget();
    Ok(())
}

/// Removes children of `list` from the front until at most `max` remain.
pub fn trim(list: &Element, max: u32) {
    while list.child_element_count() > max {
        match list.first_element_child() {
            Some(first) => first.remove(),
            None => break,
        }
    }
}

/// The local time as HH:MM:SS.
pub fn clock() -> String {
    let now = js_sys::Date::new_0();
    format!(
        "{:02}:{:02}:{:02}",
        now.get_hours(),
        now.get_minutes(),
        now.get_seconds()
    )
}
