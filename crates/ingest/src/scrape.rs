//! Scraping Prometheus-style targets: each target of each job on its own interval, its
//! samples labelled with `job` and `instance`, plus the synthetic series Prometheus adds
//! (`up`, `scrape_duration_seconds`, `scrape_samples_scraped`, …), and staleness markers for
//! series that vanish from a target or when the target goes down.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubmon_model::{Appender, Labels, PromDuration, Sample, SeriesSamples, stale_marker};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::exposition::{self, Format, Metadata};

/// One scrape job (`[[scrape]]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped.
    pub job_name: String,
    /// `host:port` of each target; each becomes the `instance` label.
    pub targets: Vec<String>,
    /// How often each target is scraped.
    #[serde(default = "default_interval")]
    pub scrape_interval: PromDuration,
    /// How long a scrape may take before it counts as failed.
    #[serde(default = "default_timeout")]
    pub scrape_timeout: PromDuration,
    #[serde(default = "default_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Extra labels put on every series of the job.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Keep the target's own `job`/`instance` labels on conflict (else they become `exported_*`).
    #[serde(default)]
    pub honor_labels: bool,
    /// Sent as `Authorization: Bearer` to the targets.
    #[serde(default)]
    pub bearer_token: Option<String>,
}

fn default_interval() -> PromDuration {
    PromDuration::from_secs(15)
}
fn default_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}
fn default_path() -> String {
    "/metrics".to_string()
}
fn default_scheme() -> String {
    "http".to_string()
}

impl ScrapeConfig {
    /// Checks what serde cannot: names, scheme, timeout within interval, target syntax.
    pub fn validate(&self) -> Result<(), String> {
        let job = &self.job_name;
        if job.is_empty() {
            return Err("scrape job_name must not be empty".into());
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(format!("scrape job {job}: scheme must be http or https, not {:?}", self.scheme));
        }
        if self.scrape_interval.as_duration().is_zero() || self.scrape_timeout > self.scrape_interval {
            return Err(format!("scrape job {job}: scrape_timeout must be positive and at most scrape_interval"));
        }
        for target in &self.targets {
            let valid =
                target.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!("scrape job {job}: target {target:?} must be host:port"));
            }
        }
        for name in self.labels.keys() {
            if !hubmon_model::is_valid_label_name(name) {
                return Err(format!("scrape job {job}: invalid label name {name:?}"));
            }
        }
        Ok(())
    }
}

/// Metric metadata from every target's `# TYPE`/`# HELP`, by metric family name.
pub type MetadataStore = Arc<RwLock<BTreeMap<String, Metadata>>>;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Scrapes one target until `shutdown`, writing through `appender`.
pub async fn run_target(
    job: Arc<ScrapeConfig>,
    target: String,
    client: reqwest::Client,
    appender: Arc<dyn Appender>,
    metadata: MetadataStore,
    shutdown: CancellationToken,
) {
    let interval = job.scrape_interval.as_duration();
    // Spread targets over the interval so they do not all fire at once.
    let offset = Duration::from_millis(fnv(&format!("{}/{target}", job.job_name)) % interval.as_millis().max(1) as u64);
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(offset) => {}
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut scraper = TargetScraper::new(job, target);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let batch = scraper.scrape(&client, &metadata).await;
        write(&appender, batch).await;
    }
    // Mark everything stale so queries stop showing the target at once.
    write(&appender, scraper.all_stale(now_ms())).await;
}

async fn write(appender: &Arc<dyn Appender>, batch: Vec<SeriesSamples>) {
    let appender = appender.clone();
    match tokio::task::spawn_blocking(move || appender.append(batch)).await {
        Ok(Ok(report)) if report.rejected > 0 => {
            tracing::debug!(rejected = report.rejected, example = ?report.rejections.first(), "scraped samples refused");
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not store scraped samples"),
        Err(error) => tracing::warn!(%error, "scrape append task failed"),
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// The state of one target between scrapes: what it exposed last time, for staleness.
pub struct TargetScraper {
    job: Arc<ScrapeConfig>,
    target: String,
    url: String,
    previous: HashSet<Labels>,
}

impl TargetScraper {
    pub fn new(job: Arc<ScrapeConfig>, target: String) -> Self {
        let url = format!("{}://{}{}", job.scheme, target, job.metrics_path);
        Self { job, target, url, previous: HashSet::new() }
    }

    fn target_labels(&self) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = self.job.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.push(("job".to_string(), self.job.job_name.clone()));
        labels.push(("instance".to_string(), self.target.clone()));
        labels
    }

    fn synthetic(&self, name: &str, value: f64, at: i64) -> Option<SeriesSamples> {
        let mut pairs = self.target_labels();
        pairs.push((hubmon_model::METRIC_NAME.to_string(), name.to_string()));
        let labels = Labels::new_series(pairs).ok()?;
        Some(SeriesSamples { labels, samples: vec![Sample::new(at, value)] })
    }

    /// One scrape: the target's samples, the synthetic series, and staleness markers.
    pub async fn scrape(&mut self, client: &reqwest::Client, metadata: &MetadataStore) -> Vec<SeriesSamples> {
        let started = Instant::now();
        let at = now_ms();
        let result = self.fetch(client).await;
        let duration = started.elapsed().as_secs_f64();
        let mut batch = Vec::new();
        let (up, scraped) = match result {
            Ok((body, format)) => match exposition::parse(&body, format) {
                Ok(parsed) => {
                    if let Ok(mut store) = metadata.write() {
                        store.extend(parsed.metadata);
                    }
                    let count = parsed.samples.len();
                    let mut current = HashSet::with_capacity(count);
                    for sample in parsed.samples {
                        let Some(labels) = self.relabel(sample.labels) else { continue };
                        current.insert(labels.clone());
                        let timestamp = sample.timestamp.unwrap_or(at);
                        batch.push(SeriesSamples { labels, samples: vec![Sample::new(timestamp, sample.value)] });
                    }
                    for gone in self.previous.difference(&current) {
                        batch.push(SeriesSamples {
                            labels: gone.clone(),
                            samples: vec![Sample::new(at, stale_marker())],
                        });
                    }
                    self.previous = current;
                    (1.0, count)
                }
                Err(error) => {
                    tracing::warn!(job = %self.job.job_name, target = %self.target, %error, "scrape returned unparsable metrics");
                    batch.extend(self.all_stale(at));
                    (0.0, 0)
                }
            },
            Err(error) => {
                tracing::debug!(job = %self.job.job_name, target = %self.target, %error, "scrape failed");
                batch.extend(self.all_stale(at));
                (0.0, 0)
            }
        };
        let series_added = batch.len();
        batch.extend(self.synthetic("up", up, at));
        batch.extend(self.synthetic("scrape_duration_seconds", duration, at));
        batch.extend(self.synthetic("scrape_samples_scraped", scraped as f64, at));
        batch.extend(self.synthetic("scrape_samples_post_metric_relabeling", scraped as f64, at));
        batch.extend(self.synthetic("scrape_series_added", series_added as f64, at));
        batch
    }

    /// Staleness markers for everything the target exposed last time.
    pub fn all_stale(&mut self, at: i64) -> Vec<SeriesSamples> {
        self.previous
            .drain()
            .map(|labels| SeriesSamples { labels, samples: vec![Sample::new(at, stale_marker())] })
            .collect()
    }

    fn relabel(&self, scraped: Vec<(String, String)>) -> Option<Labels> {
        let target = self.target_labels();
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(scraped.len() + target.len());
        for (name, value) in scraped {
            let conflicts = target.iter().any(|(n, _)| *n == name);
            if conflicts && !self.job.honor_labels {
                pairs.push((format!("exported_{name}"), value));
            } else {
                pairs.push((name, value));
            }
        }
        for (name, value) in target {
            if !pairs.iter().any(|(n, _)| *n == name) {
                pairs.push((name, value));
            }
        }
        Labels::new_series(pairs).ok()
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<(String, Format), String> {
        let mut request = client
            .get(&self.url)
            .timeout(self.job.scrape_timeout.as_duration())
            .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
            .header(
                "x-prometheus-scrape-timeout-seconds",
                self.job.scrape_timeout.as_duration().as_secs_f64().to_string(),
            );
        if let Some(token) = &self.job.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((body, Format::from_content_type(&content_type)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Arc<ScrapeConfig> {
        Arc::new(ScrapeConfig {
            job_name: "node".into(),
            targets: vec!["127.0.0.1:1".into()],
            scrape_interval: PromDuration::from_secs(15),
            scrape_timeout: PromDuration::from_secs(1),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            labels: BTreeMap::from([("env".to_string(), "test".to_string())]),
            honor_labels: false,
            bearer_token: None,
        })
    }

    #[test]
    fn target_labels_win_unless_honor_labels() {
        let scraper = TargetScraper::new(job(), "127.0.0.1:1".into());
        let labels = scraper.relabel(vec![("__name__".into(), "x".into()), ("job".into(), "inner".into())]).unwrap();
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels.get("exported_job"), Some("inner"));
        assert_eq!(labels.get("instance"), Some("127.0.0.1:1"));
        assert_eq!(labels.get("env"), Some("test"));
    }

    #[tokio::test]
    async fn a_down_target_reports_up_zero_and_marks_old_series_stale() {
        let mut scraper = TargetScraper::new(job(), "127.0.0.1:1".into());
        scraper.previous.insert(Labels::from_static(&[("__name__", "old"), ("job", "node")]));
        let metadata = MetadataStore::default();
        let batch = scraper.scrape(&reqwest::Client::new(), &metadata).await;
        let up = batch.iter().find(|s| s.labels.metric_name() == Some("up")).unwrap();
        assert_eq!(up.samples[0].value, 0.0);
        let old = batch.iter().find(|s| s.labels.metric_name() == Some("old")).unwrap();
        assert!(hubmon_model::is_stale_marker(old.samples[0].value));
        assert!(scraper.previous.is_empty());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut bad = (*job()).clone();
        bad.targets = vec!["nohost".into()];
        assert!(bad.validate().unwrap_err().contains("host:port"));
        let mut bad = (*job()).clone();
        bad.scrape_timeout = PromDuration::from_secs(60);
        assert!(bad.validate().unwrap_err().contains("scrape_timeout"));
    }
}
