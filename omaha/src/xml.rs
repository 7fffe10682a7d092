//! A small element tree over `quick-xml`'s reader: Omaha documents are a few elements deep and
//! read by path (`/response/app/updatecheck`), as update_engine's XPath reads them. Bounded:
//! documents larger than `MAX_DOCUMENT` or deeper than `MAX_DEPTH` are refused before any tree
//! is built past them, so a hostile peer cannot make either side allocate without limit.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Nebraska refuses request bodies over 64 KiB; a reply is smaller still.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Omaha nests five levels (`response/app/updatecheck/manifest/packages/package`); a margin.
const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("the document is empty")]
    Empty,
    #[error("the document is {0} bytes, over the limit of {MAX_DOCUMENT}")]
    TooLarge(usize),
    #[error("not well-formed XML: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element at `path` below this one (`["app", "updatecheck"]`).
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }
}

/// Parse a whole document into its root element. Text content is ignored (Omaha carries
/// everything in attributes); anything but whitespace outside the root is an error.
pub fn parse(doc: &str) -> Result<Element, XmlError> {
    if doc.len() > MAX_DOCUMENT {
        return Err(XmlError::TooLarge(doc.len()));
    }
    if doc.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    let mut reader = Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let malformed = |why: String| XmlError::Malformed(why);
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("at byte {at}: {e}")))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(malformed(format!("at byte {at}: a second root element")));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(format!(
                        "at byte {at}: nested deeper than {MAX_DEPTH} elements"
                    )));
                }
                stack.push(element(&e, at)?);
            }
            Event::Empty(e) => {
                let el = element(&e, at)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| {
                    malformed(format!("at byte {at}: an end tag with no start tag"))
                })?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) if stack.is_empty() && !t.xml10_content().trim().is_empty() => {
                return Err(malformed(format!(
                    "at byte {at}: text outside the root element"
                )));
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, text inside elements.
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(format!(
            "the document ends inside <{}>",
            open.name
        )));
    }
    root.ok_or_else(|| malformed("no root element".into()))
}

fn element(e: &BytesStart<'_>, at: u64) -> Result<Element, XmlError> {
    let name = e.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::Malformed(format!("at byte {at}: <{name}>: {err}")))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| XmlError::Malformed(format!("at byte {at}: <{name} {key}>: {err}")))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// An attribute value as XML text (`&`, `<`, `>`, `"`, `'` escaped).
pub fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tree_with_attributes_by_path() {
        let doc = r#"<?xml version="1.0"?><a x="1"><b y="&lt;2&amp;"/><b y="3"><c/></b></a>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.at(&["b"]).unwrap().attr("y"), Some("<2&"));
        assert_eq!(root.children_named("b").count(), 2);
        assert!(root.at(&["b", "c"]).is_none(), "the first <b> has no <c>");
        assert_eq!(root.children[1].children[0].name, "c");
    }

    #[test]
    fn refuses_what_is_not_one_well_formed_element() {
        for (doc, want) in [
            ("", "empty"),
            ("  \n", "empty"),
            ("invalid xml>", "text outside the root"),
            ("<a><b></a>", "not well-formed"),
            ("<a>", "ends inside <a>"),
            ("<a/><b/>", "second root"),
            ("<response\"", "not well-formed"),
        ] {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{doc:?}: {e}");
        }
    }

    #[test]
    fn bounds_size_and_depth() {
        let big = format!("<a>{}</a>", " ".repeat(MAX_DOCUMENT));
        assert_eq!(parse(&big), Err(XmlError::TooLarge(big.len())));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().to_string().contains("deeper"));
    }

    #[test]
    fn escapes_attribute_values() {
        assert_eq!(escape("ab"), "ab");
        assert_eq!(escape("a<b"), "a&lt;b");
        assert_eq!(escape("<&>\""), "&lt;&amp;&gt;&quot;");
        assert_eq!(escape("&lt;"), "&amp;lt;");
    }
}
