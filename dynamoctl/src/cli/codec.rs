//! How values travel through the command line: UTF-8 text, or base64 for
//! binary values.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::CliError;

/// Encoding of values on the command line and in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Values are UTF-8 text.
    Utf8,
    /// Values are base64 (standard alphabet).
    Base64,
}

impl Codec {
    /// `Base64` when the `--base64` flag is set.
    pub fn from_flag(base64: bool) -> Self {
        if base64 { Self::Base64 } else { Self::Utf8 }
    }

    /// The value bytes an argument stands for.
    pub fn decode(self, argument: &str) -> Result<Bytes, CliError> {
        match self {
            Self::Utf8 => Ok(Bytes::copy_from_slice(argument.as_bytes())),
            Self::Base64 => STANDARD
                .decode(argument.trim())
                .map(Bytes::from)
                .map_err(|err| CliError::Usage {
                    message: format!("VALUE is not valid base64 ({err})"),
                }),
        }
    }

    /// The printable form of a value.
    pub fn encode(self, value: &[u8]) -> Result<String, CliError> {
        match self {
            Self::Utf8 => std::str::from_utf8(value)
                .map(str::to_owned)
                .map_err(|_| CliError::NotUtf8),
            Self::Base64 => Ok(STANDARD.encode(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_values_pass_through() {
        let value = Codec::Utf8.decode("héllo").expect("any string is UTF-8");
        assert_eq!(Codec::Utf8.encode(&value).expect("still UTF-8"), "héllo");
    }

    #[test]
    fn base64_values_round_trip() {
        let value = Codec::Base64.decode("/wAB").expect("valid base64");
        assert_eq!(&value[..], [0xff, 0, 1]);
        assert_eq!(
            Codec::Base64.encode(&value).expect("always encodable"),
            "/wAB"
        );
    }

    #[test]
    fn bad_base64_is_a_usage_error() {
        let err = Codec::Base64.decode("@@@").expect_err("not base64");
        assert!(matches!(err, CliError::Usage { .. }), "{err:?}");
    }

    #[test]
    fn binary_values_need_base64() {
        let err = Codec::Utf8.encode(&[0xff, 0xfe]).expect_err("not UTF-8");
        assert!(err.to_string().contains("--base64"), "{err}");
    }
}
