//! An in-memory [`Querier`] for tests of the engine and of its callers (rules, API).

use hubmon_model::{Labels, Matcher, Querier, Sample, Series, StoreError};

/// Series held in memory, answering selects like the TSDB does: matching series sorted by
/// labels, samples in `[start, end]`, oldest first; series with no sample there are left out.
#[derive(Debug, Default, Clone)]
pub struct MemoryQuerier {
    series: Vec<Series>,
}

impl MemoryQuerier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels` (created when new). Samples must come in
    /// time order per series.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let index = match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, Series { labels, samples: Vec::new() });
                i
            }
        };
        self.series[index].samples.extend(samples);
    }

    /// Forgets every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
    }
}

impl Querier for MemoryQuerier {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>, StoreError> {
        Ok(self
            .matching(matchers)
            .filter_map(|s| {
                let samples: Vec<Sample> =
                    s.samples.iter().filter(|p| p.timestamp >= start && p.timestamp <= end).copied().collect();
                (!samples.is_empty()).then(|| Series { labels: s.labels.clone(), samples })
            })
            .collect())
    }

    fn label_names(&self, matchers: &[Matcher], _start: i64, _end: i64) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .flat_map(|s| s.labels.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        _start: i64,
        _end: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut values: Vec<String> =
            self.matching(matchers).filter_map(|s| s.labels.get(name).map(str::to_string)).collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
