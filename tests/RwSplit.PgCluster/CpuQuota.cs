using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace RwSplit.PgCluster;

/// <summary>
/// A fixed CPU quota for one PostgreSQL server, so that servers on one machine behave like separate machines of a known
/// size: a cgroup v1 <c>cpu</c> group (<c>/sys/fs/cgroup/cpu/rwsplit/&lt;name&gt;</c>) with <c>cpu.cfs_quota_us</c> =
/// cores × <c>cpu.cfs_period_us</c>, holding the postmaster and every process it has forked. Backends forked later
/// inherit the group. Needs root and the cgroup v1 <c>cpu</c> controller.
/// </summary>
public static class CpuQuota
{
    private const string Root = "/sys/fs/cgroup/cpu";
    private const int PeriodMicroseconds = 100_000;

    /// <summary>Whether quotas can be set here (root, cgroup v1 <c>cpu</c> controller writable).</summary>
    public static bool IsAvailable
        => OperatingSystem.IsLinux() && Environment.UserName == "root" && File.Exists(Path.Combine(Root, "cpu.cfs_quota_us"));

    /// <summary>The group's directory for <paramref name="name"/>.</summary>
    public static string GroupOf(string name) => Path.Combine(Root, "rwsplit", name);

    /// <summary>
    /// Puts the process tree rooted at <paramref name="postmasterPid"/> into the group <paramref name="name"/>, capped at
    /// <paramref name="cores"/> CPUs (0.25 = a quarter of one core). Creates or updates the group.
    /// </summary>
    /// <exception cref="InvalidOperationException">Quotas are not available here; the message says what is needed.</exception>
    public static void Apply(string name, int postmasterPid, double cores)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"A CPU quota needs root and the cgroup v1 cpu controller ({Root}/cpu.cfs_quota_us): run as root on a cgroup v1 host, or leave CpuQuota unset.");
        ArgumentOutOfRangeException.ThrowIfLessThan(cores, 0.01);
        var group = GroupOf(name);
        Directory.CreateDirectory(group);
        File.WriteAllText(Path.Combine(group, "cpu.cfs_period_us"), PeriodMicroseconds.ToString(CultureInfo.InvariantCulture));
        File.WriteAllText(Path.Combine(group, "cpu.cfs_quota_us"), ((long)Math.Round(cores * PeriodMicroseconds)).ToString(CultureInfo.InvariantCulture));
        foreach (var pid in Tree(postmasterPid))
        {
            try
            {
                File.WriteAllText(Path.Combine(group, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
            }
            catch (IOException)
            {
                // The process exited meanwhile (a backend that ended).
            }
        }
    }

    /// <summary>Lifts the quota of the group <paramref name="name"/>, if there is one (its processes stay in it, uncapped).</summary>
    public static void Lift(string name)
    {
        var quota = Path.Combine(GroupOf(name), "cpu.cfs_quota_us");
        if (File.Exists(quota))
            File.WriteAllText(quota, "-1");
    }

    /// <summary>Removes the group <paramref name="name"/> once its processes have ended (best effort).</summary>
    public static void Remove(string name)
    {
        if (!OperatingSystem.IsLinux())
            return;
        try
        {
            if (Directory.Exists(GroupOf(name)))
                Directory.Delete(GroupOf(name));
        }
        catch (IOException)
        {
            // Processes still in it: the kernel keeps it until they end.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The processes of <paramref name="name"/>'s group now.</summary>
    public static IReadOnlyList<int> Members(string name)
        => File.Exists(Path.Combine(GroupOf(name), "cgroup.procs"))
            ? File.ReadAllLines(Path.Combine(GroupOf(name), "cgroup.procs")).Where(l => l.Length > 0).Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToList()
            : [];

    /// <summary>The quota of <paramref name="name"/>'s group in cores, or <see langword="null"/> without one.</summary>
    public static double? CoresOf(string name)
    {
        var file = Path.Combine(GroupOf(name), "cpu.cfs_quota_us");
        if (!File.Exists(file))
            return null;
        var quota = long.Parse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture);
        return quota < 0 ? null : quota / (double)PeriodMicroseconds;
    }

    /// <summary><paramref name="root"/> and its descendants, from <c>/proc/*/stat</c>.</summary>
    private static List<int> Tree(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) ": state, ppid, ...
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
            }
        }

        var tree = new List<int> { root };
        for (var i = 0; i < tree.Count; i++)
            tree.AddRange(parents.Where(p => p.Value == tree[i]).Select(p => p.Key));
        return tree;
    }
}
