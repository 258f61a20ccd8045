<?php
// Publishes with Debian's php-symfony-mercure (the Symfony / API Platform publisher): argv =
// hub URL, token, then "public" or "private" per update to send. Prints each returned id.
declare(strict_types=1);

require_once 'Symfony/Component/Mercure/autoload.php';

use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Jwt\StaticTokenProvider;
use Symfony\Component\Mercure\Update;

[$script, $url, $token] = $argv;
$hub = new Hub($url, new StaticTokenProvider($token));
foreach (array_slice($argv, 3) as $i => $kind) {
    $update = new Update(
        ['https://example.com/books/1', 'https://example.com/alternate/' . $i],
        json_encode(['kind' => $kind, 'text' => "a b+c&d=é\n#{$i}"]),
        $kind === 'private'
    );
    echo $hub->publish($update), "\n";
}
