//! What a person sees of a chat message: a card laid out as a Zoom client shows it, as text
//! lines, for the demo's printout and for tests that read a channel as a person would.

use serde_json::Value;

/// A chatbot card as text, the way Zoom lays it out: head, sub-head, fields, links.
pub fn card_text(content: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(head) = content["head"]["text"].as_str() {
        lines.push(head.to_owned());
    }
    if let Some(sub) = content["head"]["sub_head"]["text"].as_str() {
        lines.push(sub.to_owned());
    }
    fn walk(items: &Value, lines: &mut Vec<String>) {
        for item in items.as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("section") => walk(&item["sections"], lines),
                Some("fields") => {
                    for field in item["items"].as_array().into_iter().flatten() {
                        lines.push(format!(
                            "  {}: {}",
                            field["key"].as_str().unwrap_or_default(),
                            field["value"].as_str().unwrap_or_default()
                        ));
                    }
                }
                Some("message") => {
                    let text = item["text"].as_str().unwrap_or_default();
                    match item["link"].as_str() {
                        Some(link) => lines.push(format!("  {text} <{link}>")),
                        None => lines.push(format!("  {text}")),
                    }
                }
                _ => {}
            }
        }
    }
    walk(&content["body"], &mut lines);
    lines.join("\n")
}
