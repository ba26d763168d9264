//! `streamcore patterns`: the join and CEP examples of the design note's processing patterns,
//! each on its own seeded generator, printing results as JSON lines and metrics on stderr.
//!
//! - `fraud`: three transactions over 500 on one card within 10 minutes, not followed by a
//!   verification → an alert;
//! - `login`: five failed logins then a success from the same user within one minute;
//! - `enrichment`: transactions joined with a user-profile changelog as of their own time.

use crate::checkpointing::{print_summary, run_job, CheckpointArgs};
use crate::demo::json_sink;
use crate::parallelism::ParallelismArg;
use clap::{Args, ValueEnum};
use compact_str::CompactString;
use serde::Serialize;
use std::time::Duration;
use streamcore::cep::Pattern;
use streamcore::join::Change;
use streamcore::source::Generator;
use streamcore::{EventTime, Job, JobConfig, JobSummary, Timestamp, WatermarkStrategy};
use streamcore_connectors::StdoutSink;

#[derive(Args, Debug)]
pub struct PatternArgs {
    /// Which example to run.
    #[arg(value_enum)]
    example: Example,
    /// Number of generated events.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    #[command(flatten)]
    parallelism: ParallelismArg,
    /// Print the metrics summary as JSON.
    #[arg(long)]
    metrics_json: bool,
    /// Write the results as JSON lines to this file instead of stdout (a directory of
    /// exactly-once part files with --checkpoint-dir).
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    #[command(flatten)]
    http: crate::http::HttpArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Example {
    /// Card fraud: 3 big transactions within 10 minutes without a verification.
    Fraud,
    /// 5 failed logins then a success within a minute.
    Login,
    /// Transactions joined with the user's profile as of the transaction time.
    Enrichment,
}

fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A card event: one event per second of event time, on 1,000 cards.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CardEvent {
    pub at: Timestamp,
    pub card: u32,
    /// `tx` or `verify`.
    pub kind: CompactString,
    pub amount: i64,
}

impl EventTime for CardEvent {
    fn event_time(&self) -> Timestamp {
        self.at
    }
}

/// Card events: mostly small transactions; every 50th card has bursts of big ones, and every
/// other such burst is followed by a verification.
pub fn card_event(i: u64) -> CardEvent {
    let card = (i % 1000) as u32;
    let round = i / 1000; // each card gets one event per 1000 events
    let at = Timestamp(1_700_000_000_000 + i as i64 * 100);
    let burst = card % 50 == 0 && round % 40 < 3;
    let verify = card % 100 == 0 && round % 40 == 3;
    CardEvent {
        at,
        card,
        kind: CompactString::const_new(if verify { "verify" } else { "tx" }),
        amount: if burst {
            900 + (mix(i) % 100) as i64
        } else {
            (mix(i) % 400) as i64
        },
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FraudAlert {
    pub card: u32,
    pub first: Timestamp,
    pub amounts: Vec<i64>,
}

/// The fraud job over `events` card events.
pub fn fraud_job(job: &mut Job, events: u64) -> streamcore::Stream<FraudAlert> {
    let pattern = Pattern::begin("big", |e: &CardEvent| e.kind == "tx" && e.amount > 500)
        .times(3)
        .not_followed_by("verified", |e: &CardEvent| e.kind == "verify")
        .within(Duration::from_secs(600));
    job.source("cards", Generator::new(card_event).bounded(events))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.card)
        .pattern(pattern)
        .map(|m| {
            let big = m.get("big");
            FraudAlert {
                card: big[0].card,
                first: big[0].at,
                amounts: big.iter().map(|e| e.amount).collect(),
            }
        })
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Login {
    pub at: Timestamp,
    pub user: u32,
    pub ok: bool,
}

impl EventTime for Login {
    fn event_time(&self) -> Timestamp {
        self.at
    }
}

/// Logins, one per 10 ms over 500 users (so 5 s apart per user); a user `u` with
/// `u % 25 == 0` fails 5 times in a row then succeeds, once in every 20 of its logins; other
/// logins fail 1 time in 10.
pub fn login_event(i: u64) -> Login {
    let user = (i % 500) as u32;
    let nth = i / 500;
    let attack = user % 25 == 0 && nth % 20 < 5;
    let after_attack = user % 25 == 0 && nth % 20 == 5;
    Login {
        at: Timestamp(1_700_000_000_000 + i as i64 * 10),
        user,
        ok: after_attack || (!attack && mix(i) % 10 != 0),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LoginAlert {
    pub user: u32,
    pub failures_from: Timestamp,
    pub success_at: Timestamp,
}

/// The login job.
pub fn login_job(job: &mut Job, events: u64) -> streamcore::Stream<LoginAlert> {
    let pattern = Pattern::begin("failed", |l: &Login| !l.ok)
        .times(5)
        .consecutive()
        .next("success", |l: &Login| l.ok)
        .within(Duration::from_secs(60));
    job.source("logins", Generator::new(login_event).bounded(events))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|l| l.user)
        .pattern(pattern)
        .map(|m| LoginAlert {
            user: m.get("success")[0].user,
            failures_from: m.get("failed")[0].at,
            success_at: m.get("success")[0].at,
        })
}

/// A profile version: (time, user, tier).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Profile {
    pub at: Timestamp,
    pub user: u32,
    pub tier: CompactString,
}

impl EventTime for Profile {
    fn event_time(&self) -> Timestamp {
        self.at
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Purchase {
    pub at: Timestamp,
    pub user: u32,
    pub amount: i64,
}

impl EventTime for Purchase {
    fn event_time(&self) -> Timestamp {
        self.at
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EnrichedPurchase {
    pub at: Timestamp,
    pub user: u32,
    pub amount: i64,
    pub tier: Option<CompactString>,
}

/// Purchases (one per 10 ms over 100 users) enriched with the user's tier as of each purchase;
/// every user's tier changes every 10 s of event time (bronze → silver → gold → …).
pub fn enrichment_job(job: &mut Job, events: u64) -> streamcore::Stream<EnrichedPurchase> {
    const START: i64 = 1_700_000_000_000;
    let purchases = Generator::new(|i| Purchase {
        at: Timestamp(START + i as i64 * 10),
        user: (i % 100) as u32,
        amount: (mix(i) % 1000) as i64,
    })
    .bounded(events);
    let versions = events / 1000 + 1;
    let profiles = Generator::new(|i| {
        let tiers = ["bronze", "silver", "gold"];
        Change::Insert(Profile {
            at: Timestamp(START + (i / 100) as i64 * 10_000 + (i % 100) as i64),
            user: (i % 100) as u32,
            tier: CompactString::const_new(tiers[((i / 100) % 3) as usize]),
        })
    })
    .bounded(versions * 100);
    let strategy = WatermarkStrategy::monotonous();
    job.source("purchases", purchases)
        .with_watermarks(strategy)
        .connect(job.source("profiles", profiles).with_watermarks(strategy))
        .key_by(|p| p.user, |c| c.row().user)
        .temporal_join(|p, profile| EnrichedPurchase {
            at: p.at,
            user: p.user,
            amount: p.amount,
            tier: profile.map(|v| v.tier.clone()),
        })
}

pub fn run(args: PatternArgs) -> anyhow::Result<()> {
    let config = args
        .checkpoints
        .apply(JobConfig::default().parallelism(args.parallelism.get()));
    let mut job = Job::new(&format!("{:?}", args.example).to_lowercase());
    let (output, checkpoints) = (args.output.as_deref(), args.checkpoints.enabled());
    fn out<T: streamcore::Data + serde::Serialize>(
        s: streamcore::Stream<T>,
        output: Option<&str>,
        checkpoints: bool,
    ) {
        match output {
            Some(path) => s.sink_named("output", json_sink(path, checkpoints)),
            None => s.sink_named("stdout", StdoutSink::new()),
        }
    }
    match args.example {
        Example::Fraud => out(fraud_job(&mut job, args.events), output, checkpoints),
        Example::Login => out(login_job(&mut job, args.events), output, checkpoints),
        Example::Enrichment => out(enrichment_job(&mut job, args.events), output, checkpoints),
    }
    let summary: JobSummary = run_job(job, config, &args.http)?;
    print_summary(&summary, args.metrics_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_job<T: streamcore::Data>(
        build: impl FnOnce(&mut Job) -> streamcore::Stream<T>,
        p: usize,
    ) -> Vec<T> {
        let mut job = Job::new("t");
        let out = build(&mut job).collect();
        job.run(JobConfig::default().parallelism(p)).unwrap();
        out.take()
    }

    #[test]
    fn fraud_alerts_are_the_unverified_bursts() {
        for p in [1, 2] {
            let mut alerts: Vec<(u32, i64)> = run_job(|j| fraud_job(j, 200_000), p)
                .into_iter()
                .map(|a| (a.card, a.first.millis()))
                .collect();
            alerts.sort();
            // Bursts: cards ≡ 0 mod 50, rounds 0-2 of every 40; verified when ≡ 0 mod 100.
            let mut expected = Vec::new();
            for card in (0..1000u64).step_by(50).filter(|c| c % 100 != 0) {
                for burst in (0..200u64).step_by(40) {
                    expected.push((card as u32, card_event(burst * 1000 + card).at.millis()));
                }
            }
            expected.sort();
            assert_eq!(alerts, expected);
        }
    }

    #[test]
    fn login_alerts_equal_a_direct_scan() {
        let n = 100_000u64;
        let mut expected = Vec::new();
        for user in 0..500u64 {
            let logins: Vec<Login> = (0..n / 500).map(|k| login_event(k * 500 + user)).collect();
            for j in 0..logins.len().saturating_sub(5) {
                let window = &logins[j..j + 6];
                if window[..5].iter().all(|l| !l.ok)
                    && window[5].ok
                    && window[5].at.millis() - window[0].at.millis() <= 60_000
                {
                    expected.push((user as u32, window[5].at.millis()));
                }
            }
        }
        expected.sort();
        for p in [1, 2] {
            let mut got: Vec<(u32, i64)> = run_job(|j| login_job(j, n), p)
                .into_iter()
                .map(|a| (a.user, a.success_at.millis()))
                .collect();
            got.sort();
            assert_eq!(got, expected);
            assert!(
                got.len() >= 200,
                "the planted attacks are found: {}",
                got.len()
            );
        }
    }

    #[test]
    fn enrichment_sees_the_tier_as_of_each_purchase() {
        let rows = run_job(|j| enrichment_job(j, 20_000), 2);
        assert_eq!(rows.len(), 20_000);
        let tiers = ["bronze", "silver", "gold"];
        for r in rows {
            // Versions of user u start at START + v·10 s + u ms.
            let since = r.at.millis() - 1_700_000_000_000 - r.user as i64;
            let expected = (since >= 0).then(|| tiers[((since / 10_000) % 3) as usize]);
            assert_eq!(r.tier.as_deref(), expected, "{r:?}");
        }
    }
}
