//! YAML that Kubernetes tools read as intended. kubectl and Helm parse YAML
//! 1.1, where plain `n`, `N`, `y`, `yes`, `off` and the like are booleans,
//! while serde_yaml writes YAML 1.2 and leaves them unquoted. The CRD has a
//! property `n` and a printer column `N`, so its YAML quotes such words.

use serde::Serialize;

/// Plain scalars that YAML 1.1 reads as booleans but YAML 1.2 as strings.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Serializes `value` as YAML whose keys and values mean the same in YAML 1.1
/// and 1.2.
///
/// # Errors
/// When serde_yaml cannot serialize `value`.
///
/// # Examples
///
/// ```
/// let text = dynamo_crd::to_kubernetes_yaml(&serde_json::json!({"n": "N"})).unwrap();
/// assert_eq!(text, "\"n\": \"N\"\n");
/// ```
pub fn to_kubernetes_yaml<T: Serialize>(value: &T) -> Result<String, serde_yaml::Error> {
    let text = serde_yaml::to_string(value)?;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        out.push_str(&quote_line(line));
        out.push('\n');
    }
    Ok(out)
}

/// Quotes a YAML 1.1 boolean word that stands alone as a key or as a value
/// on a line of block YAML.
fn quote_line(line: &str) -> String {
    // Indentation and sequence dashes come first.
    let body_start = line.len() - line.trim_start_matches([' ', '-']).len();
    let (prefix, body) = line.split_at(body_start);
    let (key, rest) = match body.split_once(':') {
        Some((key, rest)) if rest.is_empty() || rest.starts_with(' ') => (key, Some(rest)),
        _ => (body, None),
    };
    let quote = |word: &str| {
        if YAML11_BOOLEANS.contains(&word) {
            format!("\"{word}\"")
        } else {
            word.to_owned()
        }
    };
    match rest {
        Some(rest) => {
            let value = rest.trim_start();
            let gap = &rest[..rest.len() - value.len()];
            format!("{prefix}{}:{gap}{}", quote(key), quote(value))
        }
        None => format!("{prefix}{}", quote(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_boolean_words_as_keys_values_and_sequence_items() {
        assert_eq!(quote_line("    n:"), "    \"n\":");
        assert_eq!(quote_line("  - name: N"), "  - name: \"N\"");
        assert_eq!(quote_line("  - off"), "  - \"off\"");
        assert_eq!(quote_line("  n: 3"), "  \"n\": 3");
    }

    #[test]
    fn leaves_other_lines_alone() {
        for line in [
            "description: N replicas, not n",
            "  none: x",
            "  name: Nodes",
            "  url: http://a:1",
            "  - \"n\"",
            "",
        ] {
            assert_eq!(quote_line(line), line);
        }
    }

    #[test]
    fn the_quoted_text_reads_back_as_the_same_value() {
        let value = serde_json::json!({
            "n": 3, "columns": [{"name": "N"}, {"name": "R"}], "flags": ["y", "off", "x"]
        });
        let text = to_kubernetes_yaml(&value).expect("serializes");
        let back: serde_json::Value = serde_yaml::from_str(&text).expect("parses");
        assert_eq!(back, value);
        assert!(text.contains("\"n\": 3"), "{text}");
    }
}
