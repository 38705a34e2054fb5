namespace AspireTune.Retrieval.Tests;

/// <summary>Small, fixed test corpora.</summary>
internal static class Corpus
{
    public static readonly (string Id, string Text)[] Passages =
    [
        ("rabbitmq", "# Messaging\n\nRabbitMQ delivers commands to one queue and publishes events to every subscriber. Consumers acknowledge a message after the work is done, so a crash means redelivery."),
        ("postgres", "# Storage\n\nPostgreSQL keeps each service's tables. Write-ahead logging makes committed transactions durable, and replicas stream the log."),
        ("hnsw", "# Vector search\n\nHierarchical navigable small world graphs answer approximate nearest neighbour queries. Raising efSearch improves recall at the cost of latency."),
        ("tokenizer", "# Tokenization\n\nByte pair encoding merges frequent character pairs into tokens. The cl100k vocabulary has about one hundred thousand entries."),
        ("finetune", "# Fine-tuning\n\nA smaller model trained on curated examples can match a prompted large model. Early stopping watches validation loss to avoid overfitting."),
    ];

    private static readonly Dictionary<string, string[]> Topics = new()
    {
        ["sports"] = ["match", "goal", "team", "coach", "season", "league", "striker", "referee", "stadium", "score", "playoff", "tournament"],
        ["weather"] = ["rain", "storm", "forecast", "temperature", "cloudy", "sunny", "wind", "humidity", "snow", "thunder", "degrees", "drizzle"],
        ["finance"] = ["stock", "market", "shares", "investor", "dividend", "inflation", "bank", "interest", "earnings", "bond", "portfolio", "trading"],
        ["cooking"] = ["recipe", "oven", "garlic", "simmer", "butter", "flour", "bake", "sauce", "onion", "roast", "pepper", "dough"],
    };

    private static readonly string[] Filler = ["the", "today", "people", "said", "new", "week", "really", "after", "very", "about", "city", "again", "news", "local", "morning"];

    /// <summary>
    /// Labelled sentences: each mixes a few words of its topic with filler and one word of another topic, so
    /// neighbours must weigh evidence rather than match one keyword. Seeded: the same split every run.
    /// </summary>
    public static List<(string Text, string Label)> LabelledSentences(int count, int seed)
    {
        var random = new Random(seed);
        var labels = Topics.Keys.ToArray();
        var result = new List<(string, string)>();
        for (var i = 0; i < count; i++)
        {
            var label = labels[i % labels.Length];
            var words = new List<string>();
            for (var w = 0; w < 3; w++)
                words.Add(Topics[label][random.Next(Topics[label].Length)]);
            var other = labels[random.Next(labels.Length)];
            words.Add(Topics[other][random.Next(Topics[other].Length)]);
            for (var w = 0; w < 5; w++)
                words.Add(Filler[random.Next(Filler.Length)]);
            result.Add((string.Join(' ', words.OrderBy(_ => random.Next())), label));
        }
        return result;
    }
}
