//! The Prometheus remote_write receiver's decoding (protocol 1.0): a snappy-compressed
//! protobuf `WriteRequest` in, validated series out. Invalid series are refused one by one
//! with a reason; the rest of the request is kept.
//!
//! The message types are declared here with prost's derive rather than generated from the
//! .proto files: only the fields hubmon reads are declared, and protobuf skips the others.

use hubmon_model::{Labels, Rejection, Sample, SeriesSamples};
use prost::Message;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<ProtoSample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("body is not valid snappy (block format): {0}")]
    Snappy(String),
    #[error("decompressed body would be {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not a valid remote_write WriteRequest protobuf: {0}")]
    Protobuf(String),
}

/// A decoded request: what can be stored, and what was refused before storing.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub series: Vec<SeriesSamples>,
    pub rejected_samples: usize,
    pub rejections: Vec<Rejection>,
}

/// Decodes a snappy-compressed `WriteRequest`, refusing to inflate past `max_decompressed`.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<Decoded, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > max_decompressed {
        return Err(DecodeError::TooLarge { size, limit: max_decompressed });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    let request = WriteRequest::decode(raw.as_slice()).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    Ok(validate(request))
}

fn validate(request: WriteRequest) -> Decoded {
    let mut decoded = Decoded::default();
    for series in request.timeseries {
        let pairs: Vec<(String, String)> = series.labels.into_iter().map(|l| (l.name, l.value)).collect();
        // Only the metric name is kept for the error message: rendering every series' labels
        // cost more than storing its samples (measured).
        let name =
            pairs.iter().find(|(n, _)| n == hubmon_model::METRIC_NAME).map(|(_, v)| v.clone()).unwrap_or_default();
        match Labels::new_series(pairs) {
            Ok(labels) => {
                let samples = series.samples.iter().map(|s| Sample::new(s.timestamp, s.value)).collect();
                decoded.series.push(SeriesSamples { labels, samples });
            }
            Err(error) => {
                decoded.rejected_samples += series.samples.len();
                if decoded.rejections.len() < 10 {
                    decoded.rejections.push(Rejection { series: format!("{name}{{…}}"), reason: error.to_string() });
                }
            }
        }
    }
    decoded
}

/// Encodes a request the way Prometheus sends it (for tests, the benchmark and `hubmon agent`).
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect(),
            samples: samples.iter().map(|(t, v)| ProtoSample { timestamp: *t, value: *v }).collect(),
        }
    }

    #[test]
    fn decodes_what_prometheus_sends() {
        let request = WriteRequest {
            timeseries: vec![series(&[("__name__", "up"), ("job", "node")], &[(1000, 1.0), (2000, 0.0)])],
        };
        let decoded = decode(&encode(&request), 1 << 20).unwrap();
        assert_eq!(decoded.series.len(), 1);
        assert_eq!(decoded.series[0].labels, Labels::from_static(&[("__name__", "up"), ("job", "node")]));
        assert_eq!(decoded.series[0].samples, vec![Sample::new(1000, 1.0), Sample::new(2000, 0.0)]);
    }

    #[test]
    fn bad_series_are_refused_one_by_one() {
        let request = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "ok")], &[(1, 1.0)]),
                series(&[("job", "no name")], &[(1, 1.0), (2, 2.0)]),
                series(&[("__name__", "dup"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
                series(&[("__name__", "x"), ("bad-name", "1")], &[(1, 1.0)]),
                series(&[("__name__", "")], &[(1, 1.0)]),
            ],
        };
        let decoded = decode(&encode(&request), 1 << 20).unwrap();
        assert_eq!(decoded.series.len(), 1);
        assert_eq!(decoded.rejected_samples, 5);
        let reasons: Vec<&str> = decoded.rejections.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("metric name"), "{reasons:?}");
        assert!(reasons[1].contains("more than once"), "{reasons:?}");
        assert!(reasons[2].contains("invalid label name"), "{reasons:?}");
    }

    #[test]
    fn corrupt_truncated_and_oversized_bodies_are_errors() {
        let request = WriteRequest { timeseries: vec![series(&[("__name__", "up")], &[(1, 1.0)])] };
        let body = encode(&request);
        assert!(matches!(
            decode(b"not snappy at all", 1 << 20),
            Err(DecodeError::Snappy(_)) | Err(DecodeError::Protobuf(_))
        ));
        assert!(decode(&body[..body.len() - 3], 1 << 20).is_err());
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
        assert!(matches!(decode(&garbage, 1 << 20), Err(DecodeError::Protobuf(_))));
        let big = snap::raw::Encoder::new().compress_vec(&vec![0u8; 10_000]).unwrap();
        assert!(matches!(decode(&big, 1000), Err(DecodeError::TooLarge { .. })));
        for cut in 0..body.len() {
            let _ = decode(&body[..cut], 1 << 20);
        }
    }
}
