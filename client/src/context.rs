//! The opaque causal context a read returns and a write hands back.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use crate::Error;

/// Causal context of a key: which versions the caller has seen.
///
/// Pass the context of a [`get`](crate::Client::get) to the next
/// [`put`](crate::Client::put) or [`delete`](crate::Client::delete) of the
/// same key, so the write replaces exactly those versions. The client never
/// looks inside; the node validates it. An empty context means "seen
/// nothing": a write with it adds a sibling.
///
/// # Examples
///
/// ```
/// use dynamo_client::Context;
///
/// let context = Context::from_base64("AQID")?;
/// assert_eq!(context.to_base64(), "AQID");
/// assert!(Context::from_base64("not base64!").is_err());
/// # Ok::<(), dynamo_client::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Context(Bytes);

impl Context {
    /// Wraps context bytes obtained from a node earlier.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for storing the context in binary form.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// True for the empty context, which has seen no version.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes the context with the standard base64 alphabet (with padding).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Decodes a context produced by [`to_base64`](Self::to_base64).
    ///
    /// Surrounding whitespace is ignored; an empty string is the empty
    /// context.
    ///
    /// # Errors
    ///
    /// [`Error::BadContext`] when the text is not standard base64.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        STANDARD
            .decode(text.trim())
            .map(|bytes| Self(Bytes::from(bytes)))
            .map_err(|err| Error::BadContext {
                message: format!("not standard base64 ({err})"),
            })
    }
}

impl FromStr for Context {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_base64(text)
    }
}

impl From<Context> for Bytes {
    fn from(context: Context) -> Bytes {
        context.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let context = Context::from_bytes(Bytes::from_static(&[0, 1, 2, 250, 251, 252, 253]));
        let text = context.to_base64();
        assert_eq!(text, "AAEC+vv8/Q==");
        assert_eq!(Context::from_base64(&text).expect("valid base64"), context);
        assert_eq!(text.parse::<Context>().expect("valid base64"), context);
    }

    #[test]
    fn empty_text_is_the_empty_context() {
        let context = Context::from_base64("").expect("empty is valid");
        assert!(context.is_empty());
        assert_eq!(context.to_base64(), "");
    }

    #[test]
    fn bad_input_is_a_bad_context() {
        for text in ["not base64!", "AAEC+vv8/Q=", "AAEC-_", "Zm9v\u{e9}"] {
            let err = Context::from_base64(text).expect_err(text);
            assert!(matches!(err, Error::BadContext { .. }), "{text}: {err:?}");
            assert!(err.to_string().starts_with("bad context: "), "{err}");
        }
    }
}
