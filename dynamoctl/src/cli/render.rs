//! How results are printed, as text for people or JSON for programs. Pure
//! functions from results to the text written on stdout.

use dynamo_client::{Context, Durability, GetResult, Member, NodeStatus, Ring};
use serde::Serialize;

use super::CliError;
use super::args::Format;
use super::codec::Codec;

/// The outcome of asking one member for its status.
#[derive(Debug)]
pub struct StatusRow<'a> {
    /// The member, as the ring lists it.
    pub member: &'a Member,
    /// Partitions the member owns in the ring.
    pub partitions: usize,
    /// What is known of the member.
    pub status: Probe,
}

/// What is known of one member's status.
#[derive(Debug)]
pub enum Probe {
    /// The member answered.
    Answered(NodeStatus),
    /// The member was not asked (only the endpoint is reachable, through
    /// `--via-endpoint`); this is how the endpoint's failure detector sees it.
    SeenBy {
        /// The member that was asked.
        by: String,
        /// `up`, `suspect` or `down`.
        state: String,
        /// Milliseconds since `by` last heard of the member.
        last_heard_ms: u64,
    },
    /// Asking the member failed.
    Failed(StatusError),
}

/// Why a member's row has no status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status call failed.
    #[error(transparent)]
    Call(#[from] dynamo_client::Error),
    /// Only the endpoint is reachable, and it does not list the member.
    #[error("not asked: --via-endpoint reaches only {endpoint}, which does not list {member}")]
    NotAsked {
        /// The endpoint the CLI reaches.
        endpoint: String,
        /// The member.
        member: String,
    },
}

/// State shown for a member whose status call failed.
const UNREACHABLE: &str = "unreachable";
/// State shown for a member that answered.
const UP: &str = "up";

/// A context returned by a put or delete.
pub fn written(format: Format, context: &Context) -> String {
    #[derive(Serialize)]
    struct Written {
        context: String,
    }
    let context = context.to_base64();
    match format {
        Format::Text => format!("OK context={context}\n"),
        Format::Json => json(&Written { context }),
    }
}

/// A read: live values (all siblings in JSON) and the context.
pub fn get(format: Format, result: &GetResult, codec: Codec) -> Result<String, CliError> {
    #[derive(Serialize)]
    struct Get {
        siblings: Vec<Sibling>,
        context: String,
    }
    #[derive(Serialize)]
    struct Sibling {
        value: String,
        tombstone: bool,
        timestamp: u64,
    }
    let context = result.context.to_base64();
    match format {
        Format::Json => {
            let siblings = result
                .siblings
                .iter()
                .map(|sibling| {
                    Ok(Sibling {
                        value: codec.encode(&sibling.value)?,
                        tombstone: sibling.tombstone,
                        timestamp: sibling.timestamp_ms,
                    })
                })
                .collect::<Result<_, CliError>>()?;
            Ok(json(&Get { siblings, context }))
        }
        Format::Text => {
            let live: Vec<String> = result
                .live()
                .map(|sibling| codec.encode(&sibling.value))
                .collect::<Result<_, _>>()?;
            let mut out = String::new();
            match live.as_slice() {
                [] => out.push_str("not found\n"),
                [only] => line(&mut out, only),
                several => {
                    for (i, value) in several.iter().enumerate() {
                        line(&mut out, &format!("sibling {}: {value}", i + 1));
                    }
                }
            }
            if !result.context.is_empty() {
                line(&mut out, &format!("context: {context}"));
            }
            Ok(out)
        }
    }
}

/// What every member reported, one row per member: its own state, how it
/// sees the others, the hints it holds and when anti-entropy last ran.
pub fn status(format: Format, rows: &[StatusRow<'_>]) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        member: &'a str,
        address: &'a str,
        zone: &'a str,
        partitions: usize,
        state: String,
        /// The member whose view `state` is, when this one was not asked.
        seen_by: Option<&'a str>,
        epoch: Option<u64>,
        keys: Option<u64>,
        view: Vec<View<'a>>,
        hints: Vec<Hints<'a>>,
        hints_full: bool,
        anti_entropy: Vec<AntiEntropy>,
        transfer: Option<&'a dynamo_client::Transfer>,
        /// Where the node serves Prometheus `/metrics`, if it does.
        metrics: Option<&'a str>,
        error: Option<String>,
    }
    #[derive(Serialize)]
    struct View<'a> {
        member: &'a str,
        state: &'a str,
        last_heard_ms: u64,
    }
    #[derive(Serialize)]
    struct Hints<'a> {
        target: &'a str,
        keys: u64,
    }
    #[derive(Serialize)]
    struct AntiEntropy {
        partition: u32,
        finished_ms: u64,
    }
    let rows: Vec<Row<'_>> = rows
        .iter()
        .map(|row| {
            let mut out = Row {
                member: &row.member.id,
                address: &row.member.address,
                zone: &row.member.zone,
                partitions: row.partitions,
                state: UNREACHABLE.to_owned(),
                seen_by: None,
                epoch: None,
                keys: None,
                view: Vec::new(),
                hints: Vec::new(),
                hints_full: false,
                anti_entropy: Vec::new(),
                transfer: None,
                metrics: None,
                error: None,
            };
            match &row.status {
                Probe::Answered(status) => {
                    out.state = UP.to_owned();
                    out.epoch = Some(status.epoch);
                    out.keys = Some(status.keys);
                    out.view = status
                        .members
                        .iter()
                        .filter_map(|seen| {
                            Some(View {
                                member: &seen.member.as_ref()?.id,
                                state: &seen.state,
                                last_heard_ms: seen.last_heard_ms,
                            })
                        })
                        .collect();
                    out.hints = status
                        .hints
                        .iter()
                        .map(|(target, keys)| Hints {
                            target,
                            keys: *keys,
                        })
                        .collect();
                    out.hints_full = status.hints_full;
                    out.transfer = status.transfer.as_ref();
                    out.metrics = status.metrics_url.as_deref();
                    out.anti_entropy = status
                        .anti_entropy
                        .iter()
                        .map(|&(partition, finished_ms)| AntiEntropy {
                            partition,
                            finished_ms,
                        })
                        .collect();
                }
                Probe::SeenBy {
                    by,
                    state,
                    last_heard_ms,
                } => {
                    out.state = format!("{state} (seen by {by}, {last_heard_ms} ms ago)");
                    out.seen_by = Some(by);
                }
                Probe::Failed(error) => out.error = Some(error.to_string()),
            }
            out
        })
        .collect();
    match format {
        Format::Json => json(&rows),
        Format::Text => {
            let optional =
                |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64);
            table(
                &[
                    "MEMBER",
                    "ADDRESS",
                    "ZONE",
                    "PARTITIONS",
                    "STATE",
                    "EPOCH",
                    "KEYS",
                    "SEES",
                    "HINTS",
                    "ANTI-ENTROPY",
                    "TRANSFER",
                ],
                rows.iter().map(|row| {
                    let sees = row
                        .view
                        .iter()
                        .filter(|view| view.state != "self")
                        .map(|view| format!("{}={}", view.member, view.state))
                        .collect::<Vec<_>>()
                        .join(",");
                    let mut hints = row
                        .hints
                        .iter()
                        .map(|queue| format!("{}:{}", queue.target, queue.keys))
                        .collect::<Vec<_>>()
                        .join(",");
                    if row.hints_full {
                        hints.push_str(" (FULL)");
                    }
                    let anti_entropy = row
                        .anti_entropy
                        .iter()
                        .map(|run| run.finished_ms)
                        .min()
                        .map_or_else(
                            || "never".to_owned(),
                            |oldest| {
                                format!(
                                    "{} partitions, oldest {}s ago",
                                    row.anti_entropy.len(),
                                    now_ms.saturating_sub(oldest) / 1000
                                )
                            },
                        );
                    let dash = |text: String| {
                        if text.is_empty() {
                            "-".to_owned()
                        } else {
                            text
                        }
                    };
                    vec![
                        row.member.to_owned(),
                        row.address.to_owned(),
                        row.zone.to_owned(),
                        row.partitions.to_string(),
                        row.state.clone(),
                        optional(row.epoch),
                        optional(row.keys),
                        dash(sees),
                        dash(hints),
                        if row.error.is_some() {
                            "-".to_owned()
                        } else {
                            anti_entropy
                        },
                        row.transfer.map_or_else(
                            || "-".to_owned(),
                            |t| {
                                format!(
                                    "epoch {}: {}/{} partitions, ~{} KiB left",
                                    t.epoch,
                                    t.partitions_done,
                                    t.partitions_total,
                                    t.bytes_left / 1024
                                )
                            },
                        ),
                    ]
                }),
            )
        }
    }
}

/// A benchmark's figures: throughput and latency percentiles per operation.
pub fn bench(format: Format, report: &dynamo_bench::BenchReport) -> String {
    match format {
        Format::Json => json(report),
        Format::Text => {
            let mut out = format!(
                "{} loop{}, {:.1} s measured\n",
                report.mode,
                report
                    .target_rate
                    .map_or_else(String::new, |rate| format!(" at {rate} ops/s")),
                report.seconds
            );
            let rows = [("read", &report.read), ("write", &report.write)]
                .into_iter()
                .filter(|(_, op)| op.count + op.errors > 0)
                .map(|(name, op)| {
                    vec![
                        name.to_owned(),
                        op.count.to_string(),
                        op.errors.to_string(),
                        format!("{:.0}", op.ops_per_second),
                        format!("{:.2}", op.p50_us as f64 / 1000.0),
                        format!("{:.2}", op.p99_us as f64 / 1000.0),
                        format!("{:.2}", op.p999_us as f64 / 1000.0),
                        format!("{:.2}", op.max_us as f64 / 1000.0),
                    ]
                });
            out.push_str(&table(
                &[
                    "OP", "COUNT", "ERRORS", "OPS/S", "P50 MS", "P99 MS", "P99.9 MS", "MAX MS",
                ],
                rows,
            ));
            out
        }
    }
}

/// The ring: sizes, quorums, members and, if asked, every partition.
pub fn ring(format: Format, ring: &Ring, partitions_for_n: Option<u32>) -> String {
    #[derive(Serialize)]
    struct RingView<'a> {
        cluster: &'a str,
        epoch: u64,
        q: usize,
        n: u32,
        r: u32,
        w: u32,
        members: Vec<MemberView<'a>>,
        buckets: Vec<BucketView<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        partitions: Option<Vec<PartitionView<'a>>>,
    }
    #[derive(Serialize)]
    struct BucketView<'a> {
        name: &'a str,
        n: u32,
        r: u32,
        w: u32,
        /// `default` (the node's), `buffer` or `sync`.
        durability: &'static str,
    }
    #[derive(Serialize)]
    struct MemberView<'a> {
        id: &'a str,
        address: &'a str,
        zone: &'a str,
        /// Capacity weight; 0 (unset in rings from before weights) reads as 1.
        weight: u32,
        partitions: usize,
    }
    #[derive(Serialize)]
    struct PartitionView<'a> {
        partition: usize,
        owner: &'a str,
        preference: Vec<&'a str>,
        fallbacks: Vec<&'a str>,
    }
    let view = RingView {
        cluster: ring.cluster(),
        epoch: ring.epoch(),
        q: ring.partitions(),
        n: ring.n(),
        r: ring.r(),
        w: ring.w(),
        members: ring
            .members()
            .iter()
            .map(|member| MemberView {
                id: &member.id,
                address: &member.address,
                zone: &member.zone,
                weight: member.weight,
                partitions: ring.partitions_owned(member),
            })
            .collect(),
        buckets: ring
            .buckets()
            .iter()
            .map(|bucket| BucketView {
                name: &bucket.name,
                n: bucket.n,
                r: bucket.r,
                w: bucket.w,
                durability: match bucket.durability {
                    None => "default",
                    Some(Durability::Buffer) => "buffer",
                    Some(Durability::Sync) => "sync",
                },
            })
            .collect(),
        partitions: partitions_for_n.map(|n| {
            (0..ring.partitions())
                .map(|partition| PartitionView {
                    partition,
                    owner: &ring.owner(partition).id,
                    preference: ids(ring.bucket_preference_list(partition, n)),
                    fallbacks: ids(ring.bucket_fallbacks(partition, n)),
                })
                .collect()
        }),
    };
    match format {
        Format::Json => json(&view),
        Format::Text => {
            let mut out = format!(
                "cluster: {}\nepoch: {}\nQ={} N={} R={} W={}\n\n",
                view.cluster, view.epoch, view.q, view.n, view.r, view.w
            );
            out.push_str(&table(
                &["MEMBER", "ADDRESS", "ZONE", "WEIGHT", "PARTITIONS"],
                view.members.iter().map(|member| {
                    vec![
                        member.id.to_owned(),
                        member.address.to_owned(),
                        member.zone.to_owned(),
                        member.weight.to_string(),
                        member.partitions.to_string(),
                    ]
                }),
            ));
            if !view.buckets.is_empty() {
                out.push('\n');
                out.push_str(&table(
                    &["BUCKET", "N", "R", "W", "DURABILITY"],
                    view.buckets.iter().map(|bucket| {
                        vec![
                            bucket.name.to_owned(),
                            bucket.n.to_string(),
                            bucket.r.to_string(),
                            bucket.w.to_string(),
                            bucket.durability.to_owned(),
                        ]
                    }),
                ));
            }
            if let Some(partitions) = &view.partitions {
                out.push('\n');
                out.push_str(&table(
                    &["PARTITION", "OWNER", "PREFERENCE", "FALLBACKS"],
                    partitions.iter().map(|partition| {
                        vec![
                            partition.partition.to_string(),
                            partition.owner.to_owned(),
                            partition.preference.join(","),
                            partition.fallbacks.join(","),
                        ]
                    }),
                ));
            }
            out
        }
    }
}

/// The ids of `members`.
fn ids<'a>(members: impl Iterator<Item = &'a Member>) -> Vec<&'a str> {
    members.map(|member| member.id.as_str()).collect()
}

/// `value` as one line of compact JSON.
fn json(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string(value).expect("output structs always serialize");
    text.push('\n');
    text
}

/// Appends `text` and a newline.
fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| (*cell).to_owned()).collect()];
    lines.extend(rows);
    let mut widths = vec![0; header.len()];
    for cells in &lines {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in &lines {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        line(&mut out, text.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use dynamo_client::{MemberStatus, Sibling};
    use serde_json::json;

    use super::*;

    fn sibling(value: &'static [u8], tombstone: bool, timestamp_ms: u64) -> Sibling {
        Sibling {
            value: Bytes::from_static(value),
            tombstone,
            timestamp_ms,
        }
    }

    fn read(siblings: Vec<Sibling>, context: &[u8]) -> GetResult {
        GetResult {
            siblings,
            context: Context::from_bytes(Bytes::copy_from_slice(context)),
        }
    }

    fn parse(text: &str) -> serde_json::Value {
        assert!(
            text.ends_with('\n') && text.trim_end().lines().count() == 1,
            "{text:?}"
        );
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn written_context() {
        let context = Context::from_bytes(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(written(Format::Text, &context), "OK context=AQID\n");
        assert_eq!(
            parse(&written(Format::Json, &context)),
            json!({"context": "AQID"})
        );
    }

    #[test]
    fn get_json_has_every_sibling() {
        let result = read(
            vec![sibling(b"milk", false, 1234), sibling(b"", true, 1300)],
            &[1, 2, 3],
        );
        let text = get(Format::Json, &result, Codec::Utf8).expect("UTF-8 values");
        assert_eq!(
            parse(&text),
            json!({
                "siblings": [
                    {"value": "milk", "tombstone": false, "timestamp": 1234},
                    {"value": "", "tombstone": true, "timestamp": 1300},
                ],
                "context": "AQID",
            })
        );
        let text = get(Format::Json, &result, Codec::Base64).expect("base64 always works");
        assert_eq!(parse(&text)["siblings"][0]["value"], "bWlsaw==");
    }

    #[test]
    fn get_json_when_not_found() {
        let text = get(Format::Json, &read(vec![], &[]), Codec::Utf8).expect("nothing to encode");
        assert_eq!(parse(&text), json!({"siblings": [], "context": ""}));
    }

    #[test]
    fn get_text_shows_live_values_and_context() {
        let one = read(
            vec![sibling(b"milk", false, 1), sibling(b"", true, 2)],
            &[1, 2, 3],
        );
        assert_eq!(
            get(Format::Text, &one, Codec::Utf8).expect("UTF-8"),
            "milk\ncontext: AQID\n"
        );
        let two = read(
            vec![sibling(b"milk", false, 1), sibling(b"eggs", false, 2)],
            &[1, 2, 3],
        );
        assert_eq!(
            get(Format::Text, &two, Codec::Utf8).expect("UTF-8"),
            "sibling 1: milk\nsibling 2: eggs\ncontext: AQID\n"
        );
    }

    #[test]
    fn get_text_when_not_found_keeps_the_context() {
        let deleted = read(vec![sibling(b"", true, 2)], &[1, 2, 3]);
        assert_eq!(
            get(Format::Text, &deleted, Codec::Utf8).expect("nothing to encode"),
            "not found\ncontext: AQID\n"
        );
        let never = read(vec![], &[]);
        assert_eq!(
            get(Format::Text, &never, Codec::Utf8).expect("nothing to encode"),
            "not found\n"
        );
    }

    #[test]
    fn binary_values_need_base64() {
        let binary = read(vec![sibling(&[0xff], false, 1)], &[]);
        for format in [Format::Text, Format::Json] {
            let err = get(format, &binary, Codec::Utf8).expect_err("not UTF-8");
            assert!(matches!(err, CliError::NotUtf8));
        }
        assert_eq!(
            get(Format::Text, &binary, Codec::Base64).expect("base64"),
            "/w==\n"
        );
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            address: format!("{id}.local:7400"),
            zone: "a".into(),
            weight: 1,
        }
    }

    fn node_status(epoch: u64, keys: u64) -> NodeStatus {
        NodeStatus {
            id: "dynamo-0".into(),
            incarnation: "ab".into(),
            epoch,
            members: vec![MemberStatus {
                member: Some(member("dynamo-1")),
                state: "down".into(),
                partitions: 128,
                last_heard_ms: 9000,
            }],
            keys,
            uptime: Duration::from_secs(1),
            version: "0.1.0".into(),
            hints: vec![("dynamo-1".into(), 5)],
            hints_full: false,
            anti_entropy: vec![],
            transfer: None,
            metrics_url: Some("http://dynamo-0.local:9400/metrics".into()),
        }
    }

    #[test]
    fn status_marks_unreachable_members() {
        let (up, down) = (member("dynamo-0"), member("dynamo-1"));
        let rows = [
            StatusRow {
                member: &up,
                partitions: 128,
                status: Probe::Answered(node_status(7, 42)),
            },
            StatusRow {
                member: &down,
                partitions: 128,
                status: Probe::Failed(StatusError::Call(dynamo_client::Error::Timeout {
                    address: "dynamo-1".into(),
                    message: "no answer within 5s".into(),
                })),
            },
        ];
        assert_eq!(
            status(Format::Text, &rows),
            "MEMBER    ADDRESS              ZONE  PARTITIONS  STATE        EPOCH  KEYS  SEES           HINTS       ANTI-ENTROPY  TRANSFER\n\
             dynamo-0  dynamo-0.local:7400  a     128         up           7      42    dynamo-1=down  dynamo-1:5  never         -\n\
             dynamo-1  dynamo-1.local:7400  a     128         unreachable  -      -     -              -           -             -\n"
        );
        assert_eq!(
            parse(&status(Format::Json, &rows)),
            json!([
                {"member": "dynamo-0", "address": "dynamo-0.local:7400", "zone": "a", "partitions": 128,
                 "state": "up", "seen_by": null, "epoch": 7, "keys": 42, "error": null,
                 "view": [{"member": "dynamo-1", "state": "down", "last_heard_ms": 9000}],
                 "hints": [{"target": "dynamo-1", "keys": 5}], "hints_full": false, "anti_entropy": [],
                 "transfer": null, "metrics": "http://dynamo-0.local:9400/metrics"},
                {"member": "dynamo-1", "address": "dynamo-1.local:7400", "zone": "a", "partitions": 128,
                 "state": "unreachable", "seen_by": null, "epoch": null, "keys": null, "error": "dynamo-1 timed out: no answer within 5s",
                 "view": [], "hints": [], "hints_full": false, "anti_entropy": [], "transfer": null,
                 "metrics": null},
            ])
        );
    }

    #[test]
    fn status_through_an_endpoint_shows_how_it_sees_the_others() {
        let (endpoint, other) = (member("dynamo-0"), member("dynamo-1"));
        let rows = [
            StatusRow {
                member: &endpoint,
                partitions: 128,
                status: Probe::Answered(node_status(7, 42)),
            },
            StatusRow {
                member: &other,
                partitions: 128,
                status: Probe::SeenBy {
                    by: "dynamo-0".into(),
                    state: "up".into(),
                    last_heard_ms: 300,
                },
            },
        ];
        let text = status(Format::Text, &rows);
        let line = text.lines().nth(2).expect("the second member's row");
        assert!(line.contains("up (seen by dynamo-0, 300 ms ago)"), "{text}");
        assert!(!text.contains(UNREACHABLE), "{text}");
        let rows = parse(&status(Format::Json, &rows));
        assert_eq!(rows[1]["state"], "up (seen by dynamo-0, 300 ms ago)");
        assert_eq!(rows[1]["seen_by"], "dynamo-0");
        assert_eq!(rows[1]["error"], json!(null));
    }

    fn sample_ring() -> Ring {
        use dynamo_proto::v1 as pb;
        let member = |i: u32| pb::Member {
            weight: 0,
            id: format!("dynamo-{i}"),
            address: format!("10.0.0.{i}:7400"),
            zone: format!("z{i}"),
        };
        Ring::try_from(pb::GetRingResponse {
            ring: Some(pb::Ring {
                buckets: Vec::new(),
                epoch: 3,
                members: (0..3).map(member).collect(),
                owners: vec![0, 1, 2, 0],
                n: 2,
                r: 1,
                w: 2,
                cluster: "test".into(),
                next_owners: Vec::new(),
            }),
            preferences: [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
                .into_iter()
                .map(|members| pb::Preference {
                    members: members.to_vec(),
                })
                .collect(),
        })
        .expect("consistent ring")
    }

    #[test]
    fn ring_json_lists_partitions_only_when_asked() {
        let ring = sample_ring();
        let summary = parse(&super::ring(Format::Json, &ring, None));
        assert_eq!(
            summary,
            json!({
                "cluster": "test", "epoch": 3, "q": 4, "n": 2, "r": 1, "w": 2,
                "members": [
                    {"id": "dynamo-0", "address": "10.0.0.0:7400", "zone": "z0", "weight": 1, "partitions": 2},
                    {"id": "dynamo-1", "address": "10.0.0.1:7400", "zone": "z1", "weight": 1, "partitions": 1},
                    {"id": "dynamo-2", "address": "10.0.0.2:7400", "zone": "z2", "weight": 1, "partitions": 1},
                ],
                "buckets": [],
            })
        );
        let full = parse(&super::ring(Format::Json, &ring, Some(ring.n())));
        assert_eq!(
            full["partitions"][1],
            json!({"partition": 1, "owner": "dynamo-1", "preference": ["dynamo-1", "dynamo-2"], "fallbacks": ["dynamo-0"]})
        );
        assert_eq!(full["partitions"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn ring_text() {
        let text = super::ring(Format::Text, &sample_ring(), Some(2));
        assert!(
            text.starts_with("cluster: test\nepoch: 3\nQ=4 N=2 R=1 W=2\n\nMEMBER    ADDRESS"),
            "{text}"
        );
        assert!(
            text.contains("\ndynamo-1  10.0.0.1:7400  z1    1       1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nPARTITION  OWNER     PREFERENCE         FALLBACKS\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\n3          dynamo-0  dynamo-0,dynamo-1  dynamo-2\n"),
            "{text}"
        );
    }
}
