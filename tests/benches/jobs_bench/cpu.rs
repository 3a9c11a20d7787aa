//! Where the CPU goes during a run: Redis's own figure (`INFO cpu`), and user + system time of processes read
//! from /proc (Postgres: every `postgres` process plus what the postmaster collected from backends that ended).

/// Clock ticks per second of /proc's times (the Linux default `USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU milliseconds of one process, with those of its ended children it waited for.
pub fn process_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14 to 17, i.e. 11 to 14 after the state.
    let ticks: f64 =
        fields.get(11..15).map(|times| times.iter().filter_map(|t| t.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks * 1000.0 / TICKS_PER_SECOND
}

/// CPU milliseconds of every process named `name` now running (with their ended children).
pub fn processes_named_ms(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name))
        .map(process_ms)
        .sum()
}

pub async fn redis_ms(redis: &mut redis::aio::ConnectionManager) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(redis).await?;
    let field = |name: &str| -> f64 {
        info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok()).unwrap_or(0.0)
    };
    Ok((field("used_cpu_sys") + field("used_cpu_user")) * 1000.0)
}
