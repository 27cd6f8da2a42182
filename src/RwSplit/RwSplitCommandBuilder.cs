using System;
using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Diagnostics.CodeAnalysis;

namespace RwSplit;

/// <summary>
/// A <see cref="DbCommandBuilder"/> for an <see cref="RwSplitDataAdapter"/>, as the drop-in factory hands out
/// (<see cref="RwSplitProviderFactory.CreateCommandBuilder"/>): it reads the select command's schema through RwSplit and
/// generates insert, update and delete <see cref="RwSplitCommand"/>s (writes: they run on the primary). Identifiers are
/// quoted by the provider's own command builder; parameters are named <c>@p1</c>, <c>@p2</c>… as Npgsql's and SqlClient's
/// builders name them. Unlike theirs, a generated parameter gets no provider-specific type from the schema: the provider
/// infers it from the row's value (docs/adonet-conformance.md).
/// </summary>
public sealed class RwSplitCommandBuilder : DbCommandBuilder
{
    private readonly DbCommandBuilder _provider;

    /// <summary>Creates a builder for the dialect's provider.</summary>
    /// <param name="dialect">The provider dialect.</param>
    /// <exception cref="NotSupportedException">The provider has no command builder.</exception>
    public RwSplitCommandBuilder(RwSplitDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(dialect);
        _provider = dialect.ProviderFactory.CreateCommandBuilder()
            ?? throw new NotSupportedException($"The {dialect.SystemName} provider has no command builder, so RwSplit has none either.");
        QuotePrefix = _provider.QuotePrefix;
        QuoteSuffix = _provider.QuoteSuffix;
        CatalogSeparator = _provider.CatalogSeparator;
        SchemaSeparator = _provider.SchemaSeparator;
    }

    /// <summary>Creates a builder that generates the write commands of <paramref name="adapter"/>.</summary>
    /// <param name="dialect">The provider dialect.</param>
    /// <param name="adapter">The adapter.</param>
    public RwSplitCommandBuilder(RwSplitDialect dialect, RwSplitDataAdapter adapter)
        : this(dialect) => DataAdapter = adapter;

    /// <summary>Quotes an identifier as the provider's command builder does.</summary>
    /// <param name="unquotedIdentifier">The identifier.</param>
    public override string QuoteIdentifier(string unquotedIdentifier) => _provider.QuoteIdentifier(unquotedIdentifier);

    /// <summary>Unquotes an identifier as the provider's command builder does.</summary>
    /// <param name="quotedIdentifier">The quoted identifier.</param>
    public override string UnquoteIdentifier(string quotedIdentifier) => _provider.UnquoteIdentifier(quotedIdentifier);

    /// <inheritdoc />
    protected override void ApplyParameterInfo(DbParameter parameter, DataRow row, StatementType statementType, bool whereClause)
    {
        // The provider infers the type from the value (see the summary).
    }

    /// <inheritdoc />
    protected override string GetParameterName(int parameterOrdinal) => "@p" + parameterOrdinal.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc />
    protected override string GetParameterName(string parameterName) => "@" + parameterName;

    /// <inheritdoc />
    protected override string GetParameterPlaceholder(int parameterOrdinal) => GetParameterName(parameterOrdinal);

    /// <inheritdoc />
    [SuppressMessage("Usage", "CA2208", Justification = "The base type names the parameter 'adapter'.")]
    protected override void SetRowUpdatingHandler(DbDataAdapter adapter)
    {
        if (adapter is not RwSplitDataAdapter rw)
            throw new ArgumentException($"An RwSplitCommandBuilder works with an RwSplitDataAdapter, not a {adapter.GetType().Name}.", nameof(adapter));
        if (ReferenceEquals(adapter, DataAdapter))
            rw.RowUpdating -= OnRowUpdating; // being detached
        else
            rw.RowUpdating += OnRowUpdating;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _provider.Dispose();
        base.Dispose(disposing);
    }

    private void OnRowUpdating(object? sender, RowUpdatingEventArgs e) => RowUpdatingHandler(e);
}
