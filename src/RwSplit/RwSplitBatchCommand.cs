using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;

namespace RwSplit;

/// <summary>
/// One statement of an <see cref="RwSplitBatch"/>. It wraps the provider's own batch command, so parameters are the
/// provider's (<c>NpgsqlParameter</c>, <c>SqlParameter</c>), untouched.
/// </summary>
public sealed class RwSplitBatchCommand : DbBatchCommand
{
    private readonly DbBatchCommand _inner;

    internal RwSplitBatchCommand(RwSplitDialect dialect)
    {
        Dialect = dialect;
        if (!dialect.ProviderFactory.CanCreateBatch)
            throw RwSplitBatch.NotSupported(dialect);
        _inner = dialect.ProviderFactory.CreateBatchCommand();
    }

    internal RwSplitDialect Dialect { get; }

    /// <inheritdoc />
    [AllowNull]
    public override string CommandText
    {
        get => _inner.CommandText;
        set => _inner.CommandText = value ?? string.Empty;
    }

    /// <inheritdoc />
    public override CommandType CommandType
    {
        get => _inner.CommandType;
        set => _inner.CommandType = value;
    }

    /// <summary>The rows the last execution of this statement changed, as the provider reports them.</summary>
    public override int RecordsAffected => _inner.RecordsAffected;

    /// <summary>The provider's own parameter collection.</summary>
    public new DbParameterCollection Parameters => _inner.Parameters;

    /// <inheritdoc />
    protected override DbParameterCollection DbParameterCollection => _inner.Parameters;

    /// <inheritdoc />
    public override bool CanCreateParameter => _inner.CanCreateParameter;

    /// <summary>Creates a parameter of the provider's own type.</summary>
    /// <returns>The provider's parameter.</returns>
    public override DbParameter CreateParameter() => _inner.CreateParameter();

    /// <summary>The provider's own batch command, for provider-specific settings.</summary>
    public DbBatchCommand InnerBatchCommand => _inner;
}
