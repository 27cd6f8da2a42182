using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using Microsoft.Extensions.Logging;
using NUnit.Framework;
using RwSplit.Diagnostics;

namespace RwSplit.TestSupport;

/// <summary>
/// Everything RwSplit reports while a test runs: log events (pass <see cref="LoggerFactory"/> to the data source), the
/// measurements of its meter and the activities of its source, optionally only those tagged with one data source.
/// Tests assert through <see cref="Logged"/> and <see cref="Measured"/> with literal arguments, which lets
/// <c>TelemetryCoverageTests</c> check that every declared event and instrument is asserted somewhere.
/// </summary>
public sealed class TelemetryCapture : IDisposable
{
    private readonly string? _dataSource;
    private readonly MeterListener _meters = new();
    private readonly ActivityListener _activities;
    private readonly CaptureLoggerFactory _loggerFactory;
    private readonly List<(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)> _observations = new();

    public TelemetryCapture(string? dataSource = null)
    {
        _dataSource = dataSource;
        _loggerFactory = new CaptureLoggerFactory(this);
        _meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == RwSplitTelemetry.Name)
                listener.EnableMeasurementEvents(instrument);
        };
        _meters.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        _meters.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        _meters.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        _meters.Start();
        _activities = new ActivityListener
        {
            ShouldListenTo = s => s.Name == RwSplitTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (_dataSource is null || Equals(a.GetTagItem(TagNames.DataSource), _dataSource))
                    Activities.Enqueue(a);
            },
        };
        ActivitySource.AddActivityListener(_activities);
    }

    /// <summary>A logger factory whose loggers record into this capture.</summary>
    public ILoggerFactory LoggerFactory => _loggerFactory;

    public ConcurrentQueue<(EventId Id, LogLevel Level, string Message, Exception? Exception)> Events { get; } = new();

    public ConcurrentQueue<(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)> Measurements { get; } = new();

    public ConcurrentQueue<Activity> Activities { get; } = new();

    /// <summary>Forgets everything captured so far (a fixture-wide capture, between tests).</summary>
    public void Clear()
    {
        Events.Clear();
        Measurements.Clear();
        Activities.Clear();
    }

    /// <summary>The log events with this id; fails if there is none.</summary>
    public IReadOnlyList<(EventId Id, LogLevel Level, string Message, Exception? Exception)> Logged(int eventId)
    {
        var events = Events.Where(e => e.Id.Id == eventId).ToList();
        Assert.That(events, Is.Not.Empty, () => $"log event {eventId} was not written; written: {string.Join(", ", Events.Select(e => e.Id.Id).Distinct())}");
        return events;
    }

    /// <summary>
    /// The measurements of this instrument (of the capture's data source, if it has one): every one so far for a counter
    /// or histogram, the current observation for an observable gauge. Fails if there is none.
    /// </summary>
    public IReadOnlyList<(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)> Measured(string instrument)
    {
        lock (_observations)
        {
            _observations.Clear();
            _meters.RecordObservableInstruments();
        }

        var measured = Measurements.Concat(_observations).Where(m => m.Instrument == instrument).ToList();
        Assert.That(measured, Is.Not.Empty, () => $"instrument {instrument} recorded nothing; recorded: {string.Join(", ", Measurements.Select(m => m.Instrument).Distinct())}");
        return measured;
    }

    /// <summary>Fails if a secret (password, SQL literal) appears in any log message, exception message, tag or span status.</summary>
    public void AssertNothingContains(params string[] secrets)
    {
        var texts = Events.Select(e => e.Message)
            .Concat(Events.Where(e => e.Exception is not null).Select(e => e.Exception!.Message))
            .Concat(Measurements.Concat(_observations).SelectMany(m => m.Tags.Values).Select(v => v?.ToString()))
            .Concat(Activities.SelectMany(a => a.TagObjects.Select(t => t.Value?.ToString()).Append(a.StatusDescription).Append(a.DisplayName)))
            .Where(t => t is not null)
            .ToList();
        foreach (var secret in secrets)
            Assert.That(texts, Has.None.Contains(secret), $"'{secret}' leaked into telemetry");
    }

    private void Record<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        where T : struct
    {
        var dictionary = new Dictionary<string, object?>();
        foreach (var tag in tags)
            dictionary[tag.Key] = tag.Value;
        if (_dataSource is not null && dictionary.TryGetValue(TagNames.DataSource, out var name) && !Equals(name, _dataSource))
            return;
        var measurement = (instrument.Name, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), (IReadOnlyDictionary<string, object?>)dictionary);
        if (instrument.IsObservable)
            _observations.Add(measurement); // under the lock of Measured, the only caller of RecordObservableInstruments
        else
            Measurements.Enqueue(measurement);
    }

    public void Dispose()
    {
        _meters.Dispose();
        _activities.Dispose();
    }

    private sealed class CaptureLoggerFactory(TelemetryCapture capture) : ILoggerFactory, ILogger
    {
        public void AddProvider(ILoggerProvider provider)
        {
        }

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => capture.Events.Enqueue((eventId, logLevel, formatter(state, exception), exception));

        public void Dispose()
        {
        }
    }
}
