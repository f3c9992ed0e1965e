//! The harness at tiny size against the real `server-tui` binary, so it never rots: every
//! phase runs, every reply is checked by the harness itself, and the counts must add up.
//! No timing is asserted.

mod common;

use common::server_bin;

/// A ratio figure has one pair per repetition, all positive, and its summary lies within them.
/// Only the shape is checked, never a value.
fn check_ratios(what: &str, r: &bench::stats::Ratios, reps: usize) {
    assert_eq!(r.pairs.len(), reps, "{what}: {r:?}");
    assert!(
        r.pairs.iter().all(|&p| p > 0.0 && p.is_finite()),
        "{what}: {r:?}"
    );
    assert!(r.min <= r.median && r.median <= r.max, "{what}: {r:?}");
    let lo = r.pairs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.pairs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((r.min, r.max), (lo, hi), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_run_against_the_real_server() {
    let mut opts = bench::Options::tiny(server_bin());
    opts.baseline_bin = Some(env!("CARGO_BIN_EXE_bench-load").into());
    opts.verbose = true;
    let report = bench::run(&opts).await.expect("the tiny run completes");

    let pairings = opts.reps * (opts.pairings + opts.pairing_workers * opts.pairings_per_worker);
    assert_eq!(report.pairing.latency.samples, opts.reps * opts.pairings);
    assert_eq!(report.pairing.per_sec.reps, opts.reps);
    assert!(pairings >= opts.identities);

    let reconnect = report.reconnect.as_ref().expect("reconnects ran");
    assert_eq!(reconnect.latency.samples, opts.reps * opts.reconnects);
    assert_eq!(reconnect.per_sec.reps, opts.reps);

    let tasks = report.tasks.as_ref().expect("tasks ran");
    assert_eq!(tasks.suite, tasks.base_suite);
    assert_eq!(tasks.echo.len(), opts.echo.len());
    for (e, plan) in tasks.echo.iter().zip(&opts.echo) {
        assert_eq!(e.size, plan.size);
        for samples in [e.rtt.samples, e.base_rtt.samples, e.raw_rtt.samples] {
            assert_eq!(samples, opts.reps * plan.rtt_requests);
        }
        for reps in [e.rate.reps, e.base_rate.reps, e.raw_rate.reps] {
            assert_eq!(reps, opts.reps);
        }
        for (what, r) in [
            ("round trip", &e.rtt_ratio),
            ("pipelined", &e.rate_ratio),
            ("raw round trip", &e.raw_rtt_ratio),
            ("raw pipelined", &e.raw_rate_ratio),
        ] {
            check_ratios(&format!("echo {} B {what}", e.size), r, opts.reps);
        }
    }
    assert_eq!(tasks.ping.samples, opts.reps * opts.pings);

    let streams = report.streams.as_ref().expect("streams ran");
    assert_eq!(streams.cat_bytes, opts.stream_bytes);
    assert_eq!(streams.out_bytes, opts.stream_out_bytes);
    for s in [
        &streams.cat,
        &streams.base_cat,
        &streams.out,
        &streams.base_out,
    ] {
        assert_eq!(s.reps, opts.reps);
        assert!(s.min > 0.0, "{s:?}");
    }
    check_ratios("send cat", &streams.cat_ratio, opts.reps);
    check_ratios("writer", &streams.out_ratio, opts.reps);
    assert_eq!(streams.spawn.samples, opts.reps * opts.spawns);
    assert_eq!(streams.spawn_started.samples, opts.reps * opts.spawns);

    let agent = report.agent.as_ref().expect("the agent phase ran");
    assert_eq!(agent.agent.samples, opts.reps * opts.agent_requests);
    assert_eq!(agent.link.samples, opts.reps * opts.agent_requests);
    match (&agent.send_agent, &agent.send_direct) {
        (Some(via), Some(direct)) => {
            assert_eq!(via.samples, opts.reps * opts.agent_sends);
            assert_eq!(direct.samples, opts.reps * opts.agent_sends);
        }
        _ => assert!(agent.send_skipped.is_some()),
    }

    assert_eq!(report.many.len(), 1);
    let m = &report.many[0];
    assert_eq!(m.n, 50);
    assert!(m.skipped.is_none(), "{:?}", m.skipped);
    assert_eq!(m.identities, opts.identities);
    assert_eq!(m.recipients, vec![50; opts.notices]);
    assert_eq!(m.ping.samples, opts.pings_under_load);
    assert!(m.rss_after_kib > 0);
    assert!(
        report.server_warnings.is_empty(),
        "{:?}",
        report.server_warnings
    );

    // The placement is recorded, and undone after the run.
    let placement = &report.machine.placement;
    assert_eq!(
        placement.pinned(),
        placement.allowed.len() >= 2,
        "{placement:?}"
    );
    if placement.pinned() {
        assert!(
            placement
                .harness
                .iter()
                .all(|c| !placement.servers.contains(c))
        );
        assert!(!placement.harness.is_empty());
    }
    assert_eq!(bench::pin::allowed_cpus().unwrap(), placement.allowed);
    assert_eq!(report.machine.nproc, placement.allowed.len());

    // A server started while pinned runs on the servers' CPUs only (read back from /proc).
    if placement.pinned() {
        let pinned = placement.apply().expect("pins");
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bench-load"));
        let base = bench::baseline::BaselineServer::start(bin, bench::baseline::Kind::Echo)
            .await
            .expect("the baseline server starts");
        let status = std::fs::read_to_string(format!("/proc/{}/status", base.pid())).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        let expected: Vec<String> = placement.servers.iter().map(|c| c.to_string()).collect();
        let got: Vec<String> = list
            .split(',')
            .flat_map(|part| match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                    (a..=b).map(|c| c.to_string()).collect::<Vec<_>>()
                }
                None => vec![part.to_string()],
            })
            .collect();
        assert_eq!(got, expected, "{list}");
        base.stop().await.expect("the baseline server stops");
        drop(pinned);
        assert_eq!(bench::pin::allowed_cpus().unwrap(), placement.allowed);
    }
    assert!(report.machine_markdown().contains("CPU placement: "));

    // The report renders every row.
    let table = report.markdown();
    assert!(table.contains("pairing, request → stored token"));
    assert!(table.contains("50 clients: notice to all"));
    assert!(table.contains("`send cat`"));
    assert!(table.contains("one run of /bin/true"));
    assert!(table.contains("ping through the agent"));
    assert!(table.contains(&format!("over {} pairs)", opts.reps)));

    // And the JSON carries the pairs.
    let json = serde_json::to_value(&report).expect("the report serialises");
    let pairs = &json["tasks"]["echo"][0]["rate_ratio"]["pairs"];
    assert_eq!(pairs.as_array().map(Vec::len), Some(opts.reps), "{pairs}");
    let pairs = &json["streams"]["cat_ratio"]["pairs"];
    assert_eq!(pairs.as_array().map(Vec::len), Some(opts.reps), "{pairs}");
}
