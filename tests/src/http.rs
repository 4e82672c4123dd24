//! The nodes' HTTP side as tests see it: a plain HTTP/1.1 GET (hyper) and a
//! `/metrics` scrape parsed by a Prometheus text parser (`prometheus-parse`),
//! with look-ups by metric name and labels.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_parse::{Sample, Value};
use tokio::net::TcpStream;

/// Deadline of one HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP response, body as text.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The `Content-Type` header, empty when absent.
    pub content_type: String,
    /// The body.
    pub body: String,
}

/// GETs `path` from the server at `address`, on a fresh connection.
///
/// # Errors
/// When the server cannot be reached, does not answer within
/// [`HTTP_TIMEOUT`], or sends a body that is not UTF-8.
pub async fn get(address: SocketAddr, path: &str) -> anyhow::Result<Response> {
    tokio::time::timeout(HTTP_TIMEOUT, fetch(address, path))
        .await
        .with_context(|| format!("GET http://{address}{path}: no answer in {HTTP_TIMEOUT:?}"))?
        .with_context(|| format!("GET http://{address}{path}"))
}

async fn fetch(address: SocketAddr, path: &str) -> anyhow::Result<Response> {
    let stream = TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(Response {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).context("the body is not UTF-8")?,
    })
}

/// One parsed `/metrics` scrape.
#[derive(Clone, Debug)]
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses Prometheus text.
    ///
    /// # Errors
    /// When the parser refuses the text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).context("parse Prometheus text")?;
        Ok(Self {
            samples: scrape.samples,
        })
    }

    /// Scrapes `/metrics` at `address` and parses it; the response must be
    /// Prometheus text.
    ///
    /// # Errors
    /// When the request fails, the status is not 200, the content type is
    /// not Prometheus text, or the body does not parse.
    pub async fn fetch(address: SocketAddr) -> anyhow::Result<Self> {
        let response = get(address, "/metrics").await?;
        if response.status != 200 {
            bail!("/metrics answered {}: {}", response.status, response.body);
        }
        if !response
            .content_type
            .starts_with("text/plain; version=0.0.4")
        {
            bail!("/metrics has content type {:?}", response.content_type);
        }
        Self::parse(&response.body)
    }

    /// Every sample named `metric` whose labels include `labels`.
    pub fn samples<'a>(
        &'a self,
        metric: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.metric == metric
                && labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
    }

    /// The value of the one counter, gauge or untyped sample named `metric`
    /// with `labels`; `None` when there is none.
    ///
    /// # Panics
    /// When several samples match, or the match is a histogram or summary:
    /// the test asked an ambiguous question.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matches = self.samples(metric, labels);
        let sample = matches.next()?;
        assert!(
            matches.next().is_none(),
            "several samples of {metric} match {labels:?}"
        );
        match sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => Some(value),
            _ => panic!("{metric} is a histogram or summary; use `buckets`"),
        }
    }

    /// The sum of every counter, gauge or untyped sample named `metric`
    /// with `labels` (0 when there is none).
    pub fn total(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(metric, labels)
            .map(|sample| match sample.value {
                Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
                _ => 0.0,
            })
            .sum()
    }

    /// The cumulative buckets `(le, count)` of the one histogram `metric`
    /// with `labels`, ascending; `None` when there is none.
    pub fn buckets(&self, metric: &str, labels: &[(&str, &str)]) -> Option<Vec<(f64, f64)>> {
        self.samples(metric, labels)
            .find_map(|sample| match &sample.value {
                Value::Histogram(buckets) => Some(
                    buckets
                        .iter()
                        .map(|bucket| (bucket.less_than, bucket.count))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .map(|mut buckets| {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                buckets
            })
    }

    /// The count of histogram `metric` with `labels` (its `_count` sample).
    pub fn count(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.value(&format!("{metric}_count"), labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_counters_and_gauges_are_found_by_labels() {
        let text = "\
# HELP lat Latency.
# TYPE lat histogram
lat_bucket{op=\"get\",le=\"0.1\"} 1
lat_bucket{op=\"get\",le=\"+Inf\"} 3
lat_sum{op=\"get\"} 0.5
lat_count{op=\"get\"} 3
# TYPE hits_total counter
hits_total{target=\"a\"} 2
hits_total{target=\"b\"} 5
# TYPE up gauge
up 1
";
        let scrape = Scrape::parse(text).expect("parses");
        assert_eq!(scrape.count("lat", &[("op", "get")]), Some(3.0));
        assert_eq!(
            scrape.buckets("lat", &[("op", "get")]),
            Some(vec![(0.1, 1.0), (f64::INFINITY, 3.0)])
        );
        assert_eq!(scrape.value("hits_total", &[("target", "b")]), Some(5.0));
        assert_eq!(scrape.total("hits_total", &[]), 7.0);
        assert_eq!(scrape.value("up", &[]), Some(1.0));
        assert_eq!(scrape.value("missing", &[]), None);
    }
}
