//! Compressed sample chunks: delta-of-delta timestamps and XOR-ed float values (the Gorilla
//! scheme Prometheus also uses), so that samples at a steady interval cost about one bit for
//! the timestamp and a repeated or slowly changing value a few bits.
//!
//! Layout of an encoded chunk: sample count (u16 BE), then a bit stream: the first timestamp
//! as a zig-zag varint and the first value as 64 raw bits; the second timestamp as a zig-zag
//! varint delta; every later timestamp as a delta-of-delta in one of five bit-width buckets.
//! Each value after the first is XOR-ed with the previous one: `0` when equal, `10` + the
//! meaningful bits when they fit the previous leading/trailing-zero window, else `11` + 5
//! bits of leading zeros + 6 bits of length + the bits.

use hubmon_model::Sample;

/// Samples per chunk before a new one is started; Prometheus's choice, which balances the
/// cost of decoding a whole chunk for a short query against per-chunk overhead.
pub const SAMPLES_PER_CHUNK: usize = 120;

#[derive(Default, Clone, Debug)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Writes the low `count` bits of `value`, most significant first, a byte at a time.
    fn write_bits(&mut self, value: u64, count: u8) {
        let mut remaining = count;
        while remaining > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.used;
            let take = free.min(remaining);
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (free - take);
            }
            self.used = (self.used + take) % 8;
            remaining -= take;
        }
    }

    fn write_delta_of_delta(&mut self, dod: i64) {
        if dod == 0 {
            self.write_bit(false);
            return;
        }
        for (prefix, prefix_len, bits) in DOD_BUCKETS {
            let limit = 1i64 << (bits - 1);
            if (-limit..limit).contains(&dod) {
                self.write_bits(prefix, prefix_len);
                self.write_bits((dod as u64) & ((1u64 << bits) - 1), bits);
                return;
            }
        }
        self.write_bits(0b1111, 4);
        self.write_bits(dod as u64, 64);
    }

    fn write_varint(&mut self, value: i64) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                self.write_bits(u64::from(byte), 8);
                return;
            }
            self.write_bits(u64::from(byte | 0x80), 8);
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Option<bool> {
        let byte = self.bytes.get(self.position / 8)?;
        let bit = (byte >> (7 - (self.position % 8))) & 1 == 1;
        self.position += 1;
        Some(bit)
    }

    /// Reads `count` bits, most significant first, a byte at a time.
    fn read_bits(&mut self, count: u8) -> Option<u64> {
        let mut value = 0u64;
        let mut remaining = count;
        while remaining > 0 {
            let byte = *self.bytes.get(self.position / 8)?;
            let offset = (self.position % 8) as u8;
            let available = 8 - offset;
            let take = available.min(remaining);
            let bits = (byte >> (available - take)) & (((1u16 << take) - 1) as u8);
            value = (value << take) | u64::from(bits);
            self.position += usize::from(take);
            remaining -= take;
        }
        Some(value)
    }

    fn read_varint(&mut self) -> Option<i64> {
        let mut result = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.read_bits(8)?;
            result |= (byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        None
    }
}

/// Delta-of-delta buckets: (prefix bits, prefix length, value bits).
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// An append-only encoder for one chunk.
#[derive(Clone, Debug, Default)]
pub struct ChunkEncoder {
    bits: BitWriter,
    count: u16,
    min_time: i64,
    last_time: i64,
    last_delta: i64,
    last_value: u64,
    leading: u8,
    trailing: u8,
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self { leading: 0xff, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.len() >= SAMPLES_PER_CHUNK
    }

    pub fn min_time(&self) -> i64 {
        self.min_time
    }

    pub fn max_time(&self) -> i64 {
        self.last_time
    }

    /// Appends a sample; its timestamp must be greater than the last one's.
    pub fn push(&mut self, sample: Sample) {
        let value = sample.value.to_bits();
        match self.count {
            0 => {
                self.min_time = sample.timestamp;
                self.bits.write_varint(sample.timestamp);
                self.bits.write_bits(value, 64);
            }
            1 => {
                let delta = sample.timestamp.wrapping_sub(self.last_time);
                self.bits.write_varint(delta);
                self.last_delta = delta;
                self.push_value(value);
            }
            _ => {
                let delta = sample.timestamp.wrapping_sub(self.last_time);
                self.push_delta_of_delta(delta.wrapping_sub(self.last_delta));
                self.last_delta = delta;
                self.push_value(value);
            }
        }
        self.last_time = sample.timestamp;
        self.last_value = value;
        self.count += 1;
    }

    fn push_delta_of_delta(&mut self, dod: i64) {
        self.bits.write_delta_of_delta(dod);
    }

    fn push_value(&mut self, value: u64) {
        let xor = value ^ self.last_value;
        if xor == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.bits.write_bit(false);
            let significant = 64 - self.leading - self.trailing;
            self.bits.write_bits(xor >> self.trailing, significant);
        } else {
            self.bits.write_bit(true);
            let significant = 64 - leading - trailing;
            self.bits.write_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0; 0 can never occur since xor != 0.
            self.bits.write_bits(u64::from(significant) & 0x3f, 6);
            self.bits.write_bits(xor >> trailing, significant);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// The encoded bytes of the samples pushed so far.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.bits.bytes.len());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.bits.bytes);
        out
    }

    /// Bytes this encoder holds in memory (for size accounting).
    pub fn size(&self) -> usize {
        self.bits.bytes.capacity() + std::mem::size_of::<Self>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chunk is corrupt: {0}")]
pub struct CorruptChunk(pub &'static str);

/// Decodes every sample of an encoded chunk.
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, CorruptChunk> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Decodes into `out` (appending), to reuse one buffer across chunks.
pub fn decode_into(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
    let truncated = CorruptChunk("truncated");
    let (header, stream) = match bytes {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Err(truncated),
    };
    let mut reader = BitReader { bytes: stream, position: 0 };
    if header & INTEGER_FLAG != 0 {
        return decode_integers(&mut reader, header & !INTEGER_FLAG, out);
    }
    let count = header;
    let mut time = 0i64;
    let mut delta = 0i64;
    let mut value = 0u64;
    let (mut leading, mut trailing) = (0u8, 0u8);
    out.reserve(usize::from(count));
    for index in 0..count {
        match index {
            0 => {
                time = reader.read_varint().ok_or(truncated.clone())?;
                value = reader.read_bits(64).ok_or(truncated.clone())?;
            }
            _ => {
                if index == 1 {
                    delta = reader.read_varint().ok_or(truncated.clone())?;
                } else {
                    delta = delta.wrapping_add(read_delta_of_delta(&mut reader).ok_or(truncated.clone())?);
                }
                time = time.wrapping_add(delta);
                if reader.read_bit().ok_or(truncated.clone())? {
                    if reader.read_bit().ok_or(truncated.clone())? {
                        leading = reader.read_bits(5).ok_or(truncated.clone())? as u8;
                        let mut significant = reader.read_bits(6).ok_or(truncated.clone())? as u8;
                        if significant == 0 {
                            significant = 64;
                        }
                        trailing = 64u8.checked_sub(leading + significant).ok_or(CorruptChunk("bad bit window"))?;
                    }
                    let significant = 64 - leading - trailing;
                    let bits = reader.read_bits(significant).ok_or(truncated.clone())?;
                    value ^= bits << trailing;
                }
            }
        }
        out.push(Sample { timestamp: time, value: f64::from_bits(value) });
    }
    Ok(())
}

/// Set in the count field of chunks whose values are all integers, encoded like timestamps.
const INTEGER_FLAG: u16 = 0x8000;

/// Largest integer magnitude every f64 holds exactly.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Scales tried for decimal values: gauges such as `12.5` or `0.25` are integers at 10^1 or
/// 10^2, and encode as such.
const POWERS_OF_TEN: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// `value × 10^scale` as an integer, if dividing that integer by 10^scale gives back exactly
/// `value` (bit for bit, so decoding is lossless).
fn decimal_scaled(value: f64, scale: usize) -> Option<i64> {
    let power = POWERS_OF_TEN[scale];
    let scaled = (value * power).round();
    let exact = scaled.abs() <= MAX_EXACT_INTEGER && (scaled / power).to_bits() == value.to_bits();
    exact.then_some(scaled as i64)
}

/// Encodes samples for a block: counters and other integer-valued series (most of what
/// exporters send) get delta-of-delta integer values, which cost one bit a sample when the
/// rate is steady; anything else gets the XOR encoding. The smaller result is kept.
pub fn encode_best(samples: &[Sample]) -> Vec<u8> {
    let mut xor = ChunkEncoder::new();
    samples.iter().for_each(|s| xor.push(*s));
    let xor = xor.encode();
    if samples.is_empty() || samples.len() >= usize::from(INTEGER_FLAG) {
        return xor;
    }
    let Some(scale) = (0..POWERS_OF_TEN.len()).find(|&k| samples.iter().all(|s| decimal_scaled(s.value, k).is_some()))
    else {
        return xor;
    };
    let by_delta = encode_integers(samples, scale, false);
    let by_delta_of_delta = encode_integers(samples, scale, true);
    [by_delta, by_delta_of_delta, xor].into_iter().min_by_key(Vec::len).unwrap_or_default()
}

/// Value buckets: (prefix bits, prefix length, value bits). Smaller than the timestamp
/// buckets, since a gauge's step is usually a few units of its last decimal.
const VALUE_BUCKETS: [(u64, u8, u8); 4] = [(0b10, 2, 4), (0b110, 3, 7), (0b1110, 4, 12), (0b11110, 5, 20)];

impl BitWriter {
    fn write_small(&mut self, value: i64) {
        if value == 0 {
            self.write_bit(false);
            return;
        }
        for (prefix, prefix_len, bits) in VALUE_BUCKETS {
            let limit = 1i64 << (bits - 1);
            if (-limit..limit).contains(&value) {
                self.write_bits(prefix, prefix_len);
                self.write_bits((value as u64) & ((1u64 << bits) - 1), bits);
                return;
            }
        }
        self.write_bits(0b11111, 5);
        self.write_bits(value as u64, 64);
    }
}

fn read_small(reader: &mut BitReader<'_>) -> Option<i64> {
    let mut prefix_len = 0;
    while prefix_len < 5 && reader.read_bit()? {
        prefix_len += 1;
    }
    let bits = match prefix_len {
        0 => return Some(0),
        1..=4 => VALUE_BUCKETS[prefix_len - 1].2,
        _ => return Some(reader.read_bits(64)? as i64),
    };
    let raw = reader.read_bits(bits)?;
    let shift = 64 - u32::from(bits);
    Some(((raw << shift) as i64) >> shift)
}

/// The integer encoding: timestamps by delta-of-delta; values scaled by 10^`scale` and
/// written as deltas (gauges) or deltas of deltas (counters at a steady rate).
fn encode_integers(samples: &[Sample], scale: usize, values_by_dod: bool) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.write_bits(scale as u64, 4);
    bits.write_bit(values_by_dod);
    let (mut last_time, mut last_time_delta) = (0i64, 0i64);
    let (mut last_value, mut last_value_delta) = (0i64, 0i64);
    for (index, sample) in samples.iter().enumerate() {
        let value = decimal_scaled(sample.value, scale).unwrap_or_default();
        match index {
            0 => {
                bits.write_varint(sample.timestamp);
                bits.write_varint(value);
            }
            1 => {
                last_time_delta = sample.timestamp.wrapping_sub(last_time);
                last_value_delta = value.wrapping_sub(last_value);
                bits.write_varint(last_time_delta);
                bits.write_varint(last_value_delta);
            }
            _ => {
                let time_delta = sample.timestamp.wrapping_sub(last_time);
                let value_delta = value.wrapping_sub(last_value);
                bits.write_delta_of_delta(time_delta.wrapping_sub(last_time_delta));
                if values_by_dod {
                    bits.write_small(value_delta.wrapping_sub(last_value_delta));
                } else {
                    bits.write_small(value_delta);
                }
                last_time_delta = time_delta;
                last_value_delta = value_delta;
            }
        }
        last_time = sample.timestamp;
        last_value = value;
    }
    let mut out = Vec::with_capacity(2 + bits.bytes.len());
    out.extend_from_slice(&(samples.len() as u16 | INTEGER_FLAG).to_be_bytes());
    out.extend_from_slice(&bits.bytes);
    out
}

fn decode_integers(reader: &mut BitReader<'_>, count: u16, out: &mut Vec<Sample>) -> Result<(), CorruptChunk> {
    let truncated = CorruptChunk("truncated");
    let scale = reader.read_bits(4).ok_or(truncated.clone())? as usize;
    let power = *POWERS_OF_TEN.get(scale).ok_or(CorruptChunk("bad decimal scale"))?;
    let values_by_dod = reader.read_bit().ok_or(truncated.clone())?;
    let (mut time, mut time_delta, mut value, mut value_delta) = (0i64, 0i64, 0i64, 0i64);
    out.reserve(usize::from(count));
    for index in 0..count {
        match index {
            0 => {
                time = reader.read_varint().ok_or(truncated.clone())?;
                value = reader.read_varint().ok_or(truncated.clone())?;
            }
            1 => {
                time_delta = reader.read_varint().ok_or(truncated.clone())?;
                value_delta = reader.read_varint().ok_or(truncated.clone())?;
                time = time.wrapping_add(time_delta);
                value = value.wrapping_add(value_delta);
            }
            _ => {
                time_delta = time_delta.wrapping_add(read_delta_of_delta(reader).ok_or(truncated.clone())?);
                let step = read_small(reader).ok_or(truncated.clone())?;
                value_delta = if values_by_dod { value_delta.wrapping_add(step) } else { step };
                time = time.wrapping_add(time_delta);
                value = value.wrapping_add(value_delta);
            }
        }
        out.push(Sample { timestamp: time, value: value as f64 / power });
    }
    Ok(())
}

fn read_delta_of_delta(reader: &mut BitReader<'_>) -> Option<i64> {
    let mut prefix_len = 0;
    while prefix_len < 4 && reader.read_bit()? {
        prefix_len += 1;
    }
    let bits = match prefix_len {
        0 => return Some(0),
        1..=3 => DOD_BUCKETS[prefix_len - 1].2,
        _ => return Some(reader.read_bits(64)? as i64),
    };
    let raw = reader.read_bits(bits)?;
    // Sign-extend from `bits` wide.
    let shift = 64 - u32::from(bits);
    Some(((raw << shift) as i64) >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(samples: &[Sample]) -> Vec<Sample> {
        let mut encoder = ChunkEncoder::new();
        for sample in samples {
            encoder.push(*sample);
        }
        decode(&encoder.encode()).unwrap()
    }

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| x.timestamp == y.timestamp && x.value.to_bits() == y.value.to_bits())
    }

    #[test]
    fn steady_interval_and_constant_value_cost_about_two_bits_a_sample() {
        let samples: Vec<Sample> = (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 10_000, 42.0)).collect();
        let mut encoder = ChunkEncoder::new();
        samples.iter().for_each(|s| encoder.push(*s));
        let bytes = encoder.encode();
        assert!(bytes.len() < 50, "{} bytes for 120 samples", bytes.len());
        assert!(same(&decode(&bytes).unwrap(), &samples));
    }

    #[test]
    fn bucket_edges_round_trip() {
        // A delta-of-delta of exactly 2^13 must not be read back as -2^13.
        for dod in [8191i64, 8192, -8192, -8193, 65536, -65536, 1 << 19, -(1 << 19)] {
            let samples = vec![Sample::new(0, 0.0), Sample::new(1000, 0.0), Sample::new(2000 + dod, 0.0)];
            assert!(same(&round_trip(&samples), &samples), "dod {dod}");
            assert!(same(&decode(&encode_best(&samples)).unwrap(), &samples), "dod {dod}");
            let values = vec![Sample::new(0, 0.0), Sample::new(1, 0.0), Sample::new(2, dod as f64)];
            assert!(same(&decode(&encode_best(&values)).unwrap(), &values), "value step {dod}");
        }
    }

    #[test]
    fn special_values_survive() {
        let samples = vec![
            Sample::new(0, f64::NAN),
            Sample::new(1, hubmon_model::stale_marker()),
            Sample::new(2, f64::INFINITY),
            Sample::new(3, f64::NEG_INFINITY),
            Sample::new(4, -0.0),
            Sample::new(1 << 40, f64::MIN_POSITIVE),
            Sample::new((1 << 40) + 1, f64::MAX),
        ];
        assert!(same(&round_trip(&samples), &samples));
    }

    #[test]
    fn truncated_chunks_are_errors_not_panics() {
        let samples: Vec<Sample> = (0..50).map(|i| Sample::new(i * 1000, i as f64 * 1.5)).collect();
        let mut encoder = ChunkEncoder::new();
        samples.iter().for_each(|s| encoder.push(*s));
        let bytes = encoder.encode();
        for cut in 0..bytes.len() - 1 {
            let _ = decode(&bytes[..cut]);
        }
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn steady_counters_cost_about_two_bits_a_sample_in_blocks() {
        let samples: Vec<Sample> =
            (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 10_000, (1000 + i * 7) as f64)).collect();
        let bytes = encode_best(&samples);
        assert!(bytes.len() <= 48, "{} bytes", bytes.len());
        assert!(same(&decode(&bytes).unwrap(), &samples));
        let fractional: Vec<Sample> = samples.iter().map(|s| Sample::new(s.timestamp, s.value + 0.5)).collect();
        assert!(same(&decode(&encode_best(&fractional)).unwrap(), &fractional));
    }

    #[test]
    fn decimal_gauges_are_stored_as_scaled_integers_losslessly() {
        // A CPU-percent-like gauge with two decimals.
        let samples: Vec<Sample> = (0..120)
            .map(|i| Sample::new(1_700_000_000_000 + i * 10_000, 50.0 + ((i * 7) % 13) as f64 / 100.0))
            .collect();
        let bytes = encode_best(&samples);
        assert_eq!(bytes[0] & 0x80, 0x80, "integer encoding chosen");
        assert!(bytes.len() < 150, "{} bytes for 120 samples", bytes.len());
        assert!(same(&decode(&bytes).unwrap(), &samples));
        let mixed = [12.34, 12.35, 0.1, 99.99, -3.5, 0.0, 1e-9, 100.0];
        let mixed: Vec<Sample> = mixed.iter().enumerate().map(|(i, v)| Sample::new(i as i64, *v)).collect();
        assert!(same(&decode(&encode_best(&mixed)).unwrap(), &mixed));
        let awkward = vec![Sample::new(0, 0.1 + 0.2), Sample::new(1, -0.0), Sample::new(2, 1.0 / 3.0)];
        assert!(same(&decode(&encode_best(&awkward)).unwrap(), &awkward));
    }

    proptest! {
        #[test]
        fn best_encoding_round_trips_decimals(
            steps in proptest::collection::vec((0i64..100_000, -1_000_000i64..1_000_000, 0usize..6), 1..SAMPLES_PER_CHUNK),
        ) {
            let mut time = 0;
            let samples: Vec<Sample> = steps.iter().map(|(step, mantissa, scale)| {
                time += step + 1;
                Sample::new(time, *mantissa as f64 / POWERS_OF_TEN[*scale])
            }).collect();
            prop_assert!(same(&decode(&encode_best(&samples)).unwrap(), &samples));
        }

        #[test]
        fn best_encoding_round_trips_integers(
            start in -1_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((0i64..100_000_000, -1_000_000_000_000i64..1_000_000_000_000), 1..SAMPLES_PER_CHUNK),
        ) {
            let mut time = start;
            let samples: Vec<Sample> = steps.iter().map(|(step, value)| {
                time += step + 1;
                Sample::new(time, *value as f64)
            }).collect();
            prop_assert!(same(&decode(&encode_best(&samples)).unwrap(), &samples));
        }

        #[test]
        fn decode_of_encode_is_identity(
            start in -1_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((0i64..100_000_000, any::<u64>()), 1..SAMPLES_PER_CHUNK),
        ) {
            let mut time = start;
            let samples: Vec<Sample> = steps.iter().map(|(step, bits)| {
                time += step + 1;
                Sample::new(time, f64::from_bits(*bits))
            }).collect();
            prop_assert!(same(&round_trip(&samples), &samples));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }
}
