using System;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RwSplit;

/// <summary>
/// Builds an <see cref="RwSplitDataSource"/> without dependency injection. Validation is the same as the DI path's
/// (<see cref="RwSplitOptionsValidator"/>): every problem reported at once, each with its fix.
/// </summary>
public sealed class RwSplitDataSourceBuilder
{
    /// <summary>The options being built.</summary>
    public RwSplitOptions Options { get; } = new();

    /// <summary>Applies a configuration delegate to <see cref="Options"/>.</summary>
    /// <param name="configure">The delegate.</param>
    /// <returns>This builder.</returns>
    public RwSplitDataSourceBuilder Configure(Action<RwSplitOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        configure(Options);
        return this;
    }

    /// <summary>Sets the logger factory.</summary>
    /// <param name="loggerFactory">The logger factory.</param>
    /// <returns>This builder.</returns>
    public RwSplitDataSourceBuilder UseLoggerFactory(ILoggerFactory? loggerFactory)
    {
        Options.LoggerFactory = loggerFactory;
        return this;
    }

    /// <summary>
    /// Sets the crash recovery the data source joins (<see cref="RwSplitOptions.Recovery"/>): give every data source whose
    /// databases take part in the same distributed transactions the same one.
    /// </summary>
    /// <param name="recovery">The recovery; <see langword="null"/> for one of the data source's own.</param>
    /// <returns>This builder.</returns>
    public RwSplitDataSourceBuilder UseRecovery(Transactions.RwSplitRecovery? recovery)
    {
        Options.Recovery = recovery;
        return this;
    }

    /// <summary>Validates the options and builds the data source.</summary>
    /// <exception cref="OptionsValidationException">The options are invalid; <see cref="OptionsValidationException.Failures"/> lists every problem.</exception>
    public RwSplitDataSource Build()
    {
        var name = Options.Name;
        var result = new RwSplitOptionsValidator().Validate(name, Options);
        if (result.Failed)
            throw new OptionsValidationException(name, typeof(RwSplitOptions), result.Failures);
        return new RwSplitDataSource(Options);
    }
}
