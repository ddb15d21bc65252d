//! A small owned element tree read with quick-xml's pull reader, and the
//! escaping used to write request bodies.
//!
//! The reply documents of OSS, COS and S3 are a few kilobytes to a few
//! hundred kilobytes of shallow XML, so building a tree and then picking
//! fields is cheap and makes every parser a few lines of lookups. We read
//! events ourselves instead of deriving serde structs because the details
//! that matter for a filesystem are easy to get exactly right here and easy
//! to get subtly wrong through a generic deserializer:
//!
//! - text is kept verbatim (no trimming), so a key `" a "` survives;
//! - repeated elements may be interleaved (`Contents`, `CommonPrefixes`,
//!   `Contents`), as some S3-compatible servers emit them;
//! - namespace prefixes and the `xmlns` attribute are ignored (local names);
//! - entity and character references (`&amp;`, `&#13;`) are resolved, and an
//!   unknown entity is an error rather than silently dropped text.
//!
//! Imports: `store::xml` of the crate, besides std and external crates.

use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

use super::XmlError;

/// Deepest nesting we accept; the services' documents are at most 4 deep.
const MAX_DEPTH: usize = 32;

/// One element: its local name, its text (all text, CDATA and references
/// directly inside it, concatenated) and its child elements in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    fn new(name: String) -> Self {
        Self {
            name,
            text: String::new(),
            children: Vec::new(),
        }
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of the first child named `name`, `None` when absent or empty.
    pub fn child_text_nonempty(&self, name: &str) -> Option<&str> {
        self.child_text(name).filter(|t| !t.is_empty())
    }
}

/// Skip a UTF-8 byte-order mark and leading whitespace. S3 may send
/// whitespace before the document while a long copy or complete is running,
/// and an XML declaration is only valid at the very start.
pub(crate) fn trim_start(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(body.len());
    &body[start..]
}

/// The local name of the document's root element, reading no further than
/// its start tag. `None` when the body is not XML or has no element.
pub(crate) fn root_name(body: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(trim_start(body));
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) | Ok(Event::Empty(start)) => {
                return Some(start.local_name().as_ref().to_string());
            }
            Ok(Event::Decl(_))
            | Ok(Event::Comment(_))
            | Ok(Event::PI(_))
            | Ok(Event::DocType(_)) => {}
            Ok(Event::Text(text)) if is_xml_whitespace(&text) => {}
            _ => return None,
        }
    }
}

/// Parse a whole document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let body = trim_start(body);
    if body.is_empty() {
        return Err(XmlError::Empty);
    }
    // Default configuration on purpose: no text trimming (keys keep their
    // spaces) and end tags are checked against start tags.
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Syntax {
            position: reader.error_position(),
            detail: e.to_string(),
        })?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::syntax_at(&reader, "a second root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::syntax_at(&reader, "elements nested too deeply"));
                }
                stack.push(Element::new(start.local_name().as_ref().to_string()));
            }
            Event::Empty(start) => {
                let element = Element::new(start.local_name().as_ref().to_string());
                attach(&mut stack, &mut root, element, &reader)?;
            }
            Event::End(_) => {
                // quick-xml has already checked that the name matches.
                let element = stack.pop().ok_or_else(|| {
                    XmlError::syntax_at(&reader, "an end tag without a start tag")
                })?;
                attach(&mut stack, &mut root, element, &reader)?;
            }
            Event::Text(text) => match stack.last_mut() {
                Some(top) => top.text.push_str(&text.xml10_content()),
                None if is_xml_whitespace(&text) => {}
                None => {
                    return Err(XmlError::syntax_at(
                        &reader,
                        "text outside the root element",
                    ));
                }
            },
            Event::CData(cdata) => match stack.last_mut() {
                Some(top) => top.text.push_str(&cdata.xml10_content()),
                None => {
                    return Err(XmlError::syntax_at(
                        &reader,
                        "CDATA outside the root element",
                    ));
                }
            },
            Event::GeneralRef(reference) => {
                let top = stack.last_mut().ok_or_else(|| {
                    XmlError::syntax_at(&reader, "a reference outside the root element")
                })?;
                resolve_reference(&reference, &mut top.text).map_err(|detail| {
                    XmlError::Syntax {
                        position: reader.error_position(),
                        detail,
                    }
                })?;
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Syntax {
            position: reader.buffer_position(),
            detail: format!("the document ends inside <{}>", open.name),
        });
    }
    root.ok_or(XmlError::Empty)
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
    reader: &Reader<&[u8]>,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(XmlError::syntax_at(reader, "a second root element")),
    }
    Ok(())
}

fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Append the text a reference stands for: a character reference, or one of
/// the five entities XML predefines (the services' documents declare none).
fn resolve_reference(reference: &BytesRef<'_>, out: &mut String) -> Result<(), String> {
    if reference.is_char_ref() {
        let ch = reference
            .resolve_char_ref()
            .map_err(|e| format!("bad character reference &{};: {e}", reference.as_ref()))?
            .ok_or_else(|| format!("bad character reference &{};", reference.as_ref()))?;
        out.push(ch);
        return Ok(());
    }
    let text = match reference.as_ref() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        other => return Err(format!("unknown entity &{other};")),
    };
    out.push_str(text);
    Ok(())
}

/// Whether XML 1.0 can carry `ch` at all (its `Char` production). Control
/// characters other than tab, LF and CR cannot be sent, not even as
/// character references.
pub(crate) fn is_xml10_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escape `text` for element content. Besides `&`, `<` and `>`, a carriage
/// return is written as `&#13;`: a literal CR would be turned into LF by the
/// server's parser (XML end-of-line handling) and name a different key.
/// The caller has checked every character with [`is_xml10_char`].
pub(crate) fn escape_text(text: &str, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(ch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_verbatim_and_resolves_references() {
        let root = parse(b"<R><K> a &amp; b&#13;&#x41;</K><E/></R>").unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(root.child_text("K"), Some(" a & b\rA"));
        assert_eq!(root.child_text("E"), Some(""));
        assert_eq!(root.child_text_nonempty("E"), None);
    }

    #[test]
    fn strips_namespace_prefixes_and_keeps_interleaved_order() {
        let root = parse(
            br#"<?xml version="1.0"?><s:R xmlns:s="urn:x"><s:C>1</s:C><s:P>p</s:P><s:C>2</s:C></s:R>"#,
        )
        .unwrap();
        let cs: Vec<&str> = root.children_named("C").map(|c| c.text.as_str()).collect();
        assert_eq!(cs, ["1", "2"]);
        assert_eq!(root.child_text("P"), Some("p"));
    }

    #[test]
    fn cdata_is_text() {
        let root = parse(b"<R><K><![CDATA[a<b]]></K></R>").unwrap();
        assert_eq!(root.child_text("K"), Some("a<b"));
    }

    #[test]
    fn leading_whitespace_and_bom_are_skipped() {
        let root = parse(b"\xEF\xBB\xBF \r\n  <?xml version=\"1.0\"?>\n<R/>").unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(
            root_name(b"   \n<?xml version=\"1.0\"?><Error/>").as_deref(),
            Some("Error")
        );
    }

    #[test]
    fn rejects_broken_documents() {
        for body in [
            &b""[..],
            b"   ",
            b"<R>",
            b"<R></S>",
            b"<R/><S/>",
            b"<R>&nosuch;</R>",
            b"hello",
            b"<R>\xFF</R>",
        ] {
            assert!(
                parse(body).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(root_name(b"not xml"), None);
        assert_eq!(root_name(b""), None);
    }

    #[test]
    fn rejects_absurd_nesting() {
        let body = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(body.as_bytes()).is_err());
    }

    #[test]
    fn escaping_round_trips_through_the_parser() {
        let key = "a&b<c>d\"e'f\rg\nh\ti 日本 ";
        assert!(key.chars().all(is_xml10_char));
        let mut body = String::from("<K>");
        escape_text(key, &mut body);
        body.push_str("</K>");
        assert!(!body.contains('\r'));
        assert_eq!(parse(body.as_bytes()).unwrap().text, key);
    }

    #[test]
    fn xml10_char_classes() {
        assert!(!is_xml10_char('\u{0}'));
        assert!(!is_xml10_char('\u{1}'));
        assert!(!is_xml10_char('\u{B}'));
        assert!(!is_xml10_char('\u{FFFE}'));
        assert!(is_xml10_char('\t'));
        assert!(is_xml10_char('\u{1F600}'));
    }
}
