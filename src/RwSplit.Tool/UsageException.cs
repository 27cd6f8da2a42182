using System;

namespace RwSplit.Tool;

/// <summary>A mistake in how the tool was called (exit code 3); the message says how to fix it.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message)
        : base(message)
    {
    }

    public UsageException()
    {
    }

    public UsageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
