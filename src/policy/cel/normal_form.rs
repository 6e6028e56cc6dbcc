//! The normal forms in which attributes reach rules (see `AuthzRequest::canonical`), and how
//! a literal written in a rule fails them: such a literal can never equal the attribute.

/// The normal form of a header's value, for the headers Warrant normalizes.
pub(super) fn header_form(name: &str) -> Option<Form> {
    match name {
        ":authority" | "host" | ":scheme" => Some(Form::Lower),
        ":method" => Some(Form::Upper),
        _ => None,
    }
}

/// A normal form in which an attribute reaches rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    Lower,
    Upper,
    /// Lower case, without userinfo, port or trailing dot.
    Hostname,
    /// A SPIFFE ID: its scheme and trust domain are lower case (SPIFFE ID §2.1).
    SpiffeId,
}

impl Form {
    /// How `written` fails this form — what the form is and the spelling that could match —
    /// or `None` when it can match. `whole`: compared with the whole value, not a part.
    pub(super) fn mismatch(self, written: &str, whole: bool) -> Option<(&'static str, String)> {
        let lower = written.to_ascii_lowercase();
        match self {
            Form::Lower => (lower != written).then_some(("in lower case", lower)),
            Form::Hostname if !whole => (lower != written).then_some(("in lower case", lower)),
            Form::Hostname => {
                let host = crate::request::hostname(&lower);
                (host != written).then(|| {
                    (
                        "in lower case, without port or trailing dot",
                        host.to_owned(),
                    )
                })
            }
            Form::Upper => {
                let upper = written.to_ascii_uppercase();
                (upper != written).then_some(("in upper case", upper))
            }
            Form::SpiffeId => {
                let rest = lower.strip_prefix("spiffe://")?;
                let authority = "spiffe://".len() + rest.find('/').unwrap_or(rest.len());
                let fixed = format!("{}{}", &lower[..authority], &written[authority..]);
                (fixed != written).then_some((
                    "a SPIFFE ID with its scheme and trust domain in lower case",
                    fixed,
                ))
            }
        }
    }
}
